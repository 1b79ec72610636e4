"""Byte-level BPE tokenizers trained offline on the project's own corpus (data/), no hub.

Two flavours share one trainer: InternLM2-chat's special tokens (``<unk>``=0, ``<s>``=1, ``</s>``=2, then
``<|im_start|>``, ``<|im_end|>`` ...) with its chat template, and Qwen2's (``<|endoftext|>``, ``<|im_start|>``,
``<|im_end|>``) with a ChatML template. Saved as a fast tokenizer (tokenizer.json) that both transformers 4.x and
5.x load as ``PreTrainedTokenizerFast``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from suiqa.paths import data_dir

# The InternLM2-chat template, as shipped in internlm2-chat-1_8b's tokenizer_config.json.
INTERNLM2_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Qwen2.5-style ChatML: a default system prompt when the conversation has none.
QWEN2_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TokenizerFlavour:
    name: str
    special_tokens: list[str]
    chat_template: str
    bos_token: str | None
    eos_token: str
    unk_token: str | None
    pad_token: str
    stop_tokens: list[str] = field(default_factory=list)  # extra generation stops (end of a chat turn)


INTERNLM2 = TokenizerFlavour(
    name="internlm2",
    special_tokens=["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|action_start|>", "<|action_end|>",
                    "<|interpreter|>", "<|plugin|>"],
    chat_template=INTERNLM2_CHAT_TEMPLATE,
    bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>",
    stop_tokens=["<|im_end|>"],
)
QWEN2 = TokenizerFlavour(
    name="qwen2",
    special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    chat_template=QWEN2_CHAT_TEMPLATE,
    bos_token=None, eos_token="<|im_end|>", unk_token=None, pad_token="<|endoftext|>",
    stop_tokens=["<|endoftext|>"],
)


def corpus_texts(root: Path | None = None, max_chars: int = 3_000_000) -> Iterator[str]:
    """Deterministic sample of the vendored corpus: poems and history text, in sorted file order."""
    root = root or data_dir()
    files = sorted(root.glob("poetry-qa/**/*.json")) + sorted(root.glob("knowledge/**/*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no corpus files under {root} (expected data/poetry-qa and data/knowledge)")
    budget = max_chars
    for path in files:
        if path.suffix == ".json":
            records = json.loads(path.read_text(encoding="utf-8"))
        else:
            records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        per_file = max_chars // len(files)
        used = 0
        for rec in records:
            text = "\n".join(str(rec.get(k, "")) for k in ("title", "author", "content", "text", "classical", "modern")
                             if rec.get(k))
            if not text:
                continue
            yield text
            used += len(text)
            budget -= len(text)
            if used >= per_file or budget <= 0:
                break
        if budget <= 0:
            return


def train_tokenizer(flavour: TokenizerFlavour, vocab_size: int, texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=flavour.unk_token))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=flavour.special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if flavour.bos_token:
        bos_id = tok.token_to_id(flavour.bos_token)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{flavour.bos_token} $A", pair=f"{flavour.bos_token} $A {flavour.bos_token} $B",
            special_tokens=[(flavour.bos_token, bos_id)],
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def save_tokenizer(tok, flavour: TokenizerFlavour, out: Path, model_max_length: int) -> dict[str, int]:
    """Write tokenizer.json + tokenizer_config.json + special_tokens_map.json; return special token ids."""
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    specials = {t: tok.token_to_id(t) for t in flavour.special_tokens}
    named = {k: getattr(flavour, k) for k in ("bos_token", "eos_token", "unk_token", "pad_token")
             if getattr(flavour, k)}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **named,
        "additional_special_tokens": [t for t in flavour.special_tokens if t not in named.values()],
        "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False,
        "chat_template": flavour.chat_template,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    (out / "special_tokens_map.json").write_text(
        json.dumps({**named, "additional_special_tokens": config["additional_special_tokens"]}, indent=2),
        encoding="utf-8")
    return specials
