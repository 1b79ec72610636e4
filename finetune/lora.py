"""LoRA fine-tuning with PEFT on the Llama layout (no XTuner, no remote code), and merging an adapter.

The base may be an InternLM2 checkpoint: it is first converted to the Llama layout (``OUT/base-llama``), which is
also the base vLLM needs to serve the adapter unmerged (``--enable-lora --lora-modules sui=OUT/adapter``): vLLM's
InternLM2 fuses q/k/v into one head-interleaved ``wqkv``, so an adapter trained on ``q_proj``/``k_proj``/``v_proj``
only fits the Llama layout. On CUDA, ``quantize="4bit"`` trains QLoRA (bitsandbytes NF4); on CPU it is refused.

Imports only torch, transformers, peft, safetensors and tqdm (plus suiqa.errors), so ``finetune.bench_lora`` runs
on a GPU image that lacks the rest of the project's dependencies.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from finetune.convert import TOKENIZER_FILES, internlm2_dir_to_llama, llama_dir_to_internlm2, read_config
from suiqa.errors import SuiqaError

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
IGNORE = -100


@dataclass
class LoraHyper:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    lr: float = 2e-4
    steps: int = 20
    batch_size: int = 4
    max_length: int = 256
    seed: int = 0
    quantize: str = "none"  # none | 4bit (QLoRA; CUDA + bitsandbytes only)


@dataclass
class TrainResult:
    adapter_dir: Path
    base_llama_dir: Path
    steps: int
    first_loss: float
    last_loss: float
    tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def llama_base(base: Path, work: Path) -> Path:
    """``base`` itself if it is Llama-layout, else its conversion into ``work/base-llama``."""
    kind = read_config(base).get("model_type")
    if kind == "llama":
        return Path(base)
    if kind == "internlm2":
        return internlm2_dir_to_llama(base, work / "base-llama")
    raise SuiqaError(f"{base}: model_type {kind!r} is not supported (expected internlm2 or llama)")


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(model_dir: Path, quantize: str = "none", dtype: torch.dtype | None = None):
    """The Llama-layout model for training: fp32 on CPU, bf16 on CUDA, NF4 with ``quantize='4bit'``."""
    from transformers import AutoModelForCausalLM

    dev = device()
    dtype = dtype or (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    kwargs: dict = {"dtype": dtype}
    if quantize == "4bit":
        if dev.type != "cuda":
            raise SuiqaError(
                "QLoRA (--quantize 4bit) needs CUDA and bitsandbytes; use --quantize none on CPU"
            )
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise SuiqaError("QLoRA needs bitsandbytes: pip install bitsandbytes") from None
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = {"": 0}
    elif quantize != "none":
        raise SuiqaError(f"unknown --quantize {quantize!r}; choose none or 4bit")
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), trust_remote_code=False, **kwargs)
    if quantize == "4bit":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    else:
        model.to(dev)
    return model


def add_lora(model, hyper: LoraHyper):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=hyper.r,
        lora_alpha=hyper.alpha,
        lora_dropout=hyper.dropout,
        bias="none",
        target_modules=LORA_TARGETS,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


# ---- data -------------------------------------------------------------------------------------------------------


def read_conversations(path: Path) -> list[list[dict]]:
    """Chat JSONL (``{"messages": [...]}`` per line) or alpaca JSON (a list of instruction/input/output)."""
    path = Path(path)
    if not path.is_file():
        raise SuiqaError(f"training data not found: {path} (create it with `suiqa finetune data`)")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            convs = [r["messages"] for r in rows]
        else:
            rows = json.loads(text)
            convs = [
                [
                    {
                        "role": "user",
                        "content": f"{r['instruction']}\n{r['input']}"
                        if r.get("input")
                        else r["instruction"],
                    },
                    {"role": "assistant", "content": r["output"]},
                ]
                for r in rows
            ]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SuiqaError(
            f"{path}: not chat JSONL (messages) or alpaca JSON (instruction/output): {exc}"
        ) from None
    convs = [c for c in convs if c and c[-1].get("role") == "assistant"]
    if not convs:
        raise SuiqaError(f"{path}: no conversations ending with an assistant answer")
    return convs


def encode(tokenizer, conversation: list[dict], max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels; only the assistant answer (and its end marker) is learned."""
    prompt = tokenizer.apply_chat_template(conversation[:-1], add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(conversation, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"][:max_length]
    labels = [IGNORE] * min(len(prompt_ids), len(ids)) + ids[len(prompt_ids) :]
    return ids, labels


def batches(
    examples: list[tuple[list[int], list[int]]], batch_size: int, pad_id: int, seed: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless shuffled, right-padded batches."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(examples), generator=gen).tolist()
        for start in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
            chunk = [examples[i] for i in order[start : start + batch_size]]
            width = max(len(ids) for ids, _ in chunk)
            yield {
                "input_ids": torch.tensor([ids + [pad_id] * (width - len(ids)) for ids, _ in chunk]),
                "labels": torch.tensor([lab + [IGNORE] * (width - len(lab)) for _, lab in chunk]),
                "attention_mask": torch.tensor(
                    [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in chunk]
                ),
            }


def train_steps(
    model, batch_iter: Iterator[dict[str, torch.Tensor]], steps: int, lr: float, desc: str = "LoRA"
) -> tuple[list[float], int, float]:
    """Run ``steps`` AdamW steps on the trainable (LoRA) parameters; (losses, label tokens, seconds)."""
    from tqdm import tqdm

    dev = next(p for p in model.parameters() if p.requires_grad).device
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    model.train()
    losses: list[float] = []
    tokens = 0
    start = time.perf_counter()
    with tqdm(total=steps, desc=desc, unit="step", disable=None) as bar:
        for _ in range(steps):
            batch = {k: v.to(dev) for k, v in next(batch_iter).items()}
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            optim.step()
            optim.zero_grad(set_to_none=True)
            losses.append(loss.item())
            tokens += int(batch["attention_mask"].sum())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", tok_s=f"{tokens / (time.perf_counter() - start):.0f}")
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return losses, tokens, time.perf_counter() - start


def train_lora(base: Path, data: Path, out: Path, hyper: LoraHyper = LoraHyper()) -> TrainResult:
    """Train a LoRA adapter on ``data`` for ``base``; writes ``out/adapter`` (+ ``out/base-llama`` if converted)."""
    from transformers import AutoTokenizer

    conversations = read_conversations(data)  # fail on bad data before any model work
    base_llama = llama_base(Path(base), Path(out))
    torch.manual_seed(hyper.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base_llama))
    if not tokenizer.chat_template:
        raise SuiqaError(f"{base}: the tokenizer has no chat template")
    examples = [encode(tokenizer, c, hyper.max_length) for c in conversations]
    examples = [e for e in examples if any(lab != IGNORE for lab in e[1])]
    if not examples:
        raise SuiqaError(f"{data}: every answer was cut off by max_length={hyper.max_length}")
    model = add_lora(load_model(base_llama, hyper.quantize), hyper)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    losses, tokens, seconds = train_steps(
        model, batches(examples, hyper.batch_size, pad_id, hyper.seed), hyper.steps, hyper.lr
    )
    if not all(math.isfinite(x) for x in losses):
        raise SuiqaError(f"LoRA training diverged (loss {losses[-1]}); lower --lr")
    adapter_dir = Path(out) / "adapter"
    model.save_pretrained(str(adapter_dir))
    (adapter_dir / "train_log.json").write_text(
        json.dumps(
            {
                "losses": losses,
                "tokens": tokens,
                "seconds": seconds,
                "hyper": hyper.__dict__,
                "data": str(data),
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    return TrainResult(adapter_dir, base_llama, hyper.steps, losses[0], losses[-1], tokens, seconds)


def merge_adapter(base: Path, adapter: Path, out: Path, layout: str = "llama") -> Path:
    """``merge_and_unload`` the adapter into its base and save; ``layout='internlm2'`` converts the result back."""
    from peft import PeftModel
    from tqdm import tqdm

    if layout not in ("llama", "internlm2"):
        raise SuiqaError(f"unknown --layout {layout!r}; choose llama or internlm2")
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise SuiqaError(f"LoRA adapter not found: {adapter} has no adapter_config.json")
    out = Path(out)
    with (
        tempfile.TemporaryDirectory(prefix="suiqa-merge-") as tmp,
        tqdm(total=3, desc="merge", unit="step", disable=None) as bar,
    ):
        base_llama = llama_base(Path(base), Path(tmp))
        dtype = getattr(torch, str(read_config(base_llama).get("torch_dtype") or "float32"), torch.float32)
        model = load_model(base_llama, dtype=torch.float32).cpu()
        bar.update(1)
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().to(dtype)
        bar.update(1)
        llama_out = out if layout == "llama" else out.parent / f"{out.name}.llama"
        merged.save_pretrained(str(llama_out), safe_serialization=True)
        for name in TOKENIZER_FILES:  # verbatim, so transformers 4.x (XTuner) still loads them
            if (base_llama / name).is_file():
                shutil.copyfile(base_llama / name, llama_out / name)
        if layout == "internlm2":
            llama_dir_to_internlm2(llama_out, out)
            shutil.rmtree(llama_out)
        bar.update(1)
    return out
