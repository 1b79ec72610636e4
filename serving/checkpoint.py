"""A real InternLM2 checkpoint on the GPU: convert it once to the Llama layout, or refuse with the command to do so.

Why: vLLM 0.26's native ``InternLM2ForCausalLM`` fails at engine start-up on the GPU (``forward() missing 1
required positional argument: 'intermediate_tensors'``, benchmarks/results/h200/report.md), while the Llama layout
of the same weights serves (and is what every H200 figure measured). The conversion only re-slices tensors
(the tensor maths of ``suiqa.models.internlm2_layout``, which ``finetune.convert`` uses too; bit-exact round trip,
tests/unit/serving/test_checkpoint.py): 3.5 GB written for the 1.8B model in 2.0 s on the H200 host. Its
output is cached under ``$SUIQA_HOME/models/.converted/<name>-<key>-llama`` where ``key`` hashes the source
folder's path and the size and modification time of its config and weight files, so a retrained checkpoint is
converted again and an unchanged one never is. The folder is written under a temporary name and renamed when
complete, so a crash or two servers starting at once never leave a half-written model that a later start would
trust.

CPU profiles serve InternLM2 natively (``trust_remote_code``), so they are left alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

from suiqa.errors import SuiqaError
from suiqa.paths import models_dir

log = logging.getLogger(__name__)
MARKER = ".suiqa-converted.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "generation_config.json")


class CheckpointLayoutError(SuiqaError):
    """The model folder cannot be served as configured; the message is one line with the fix."""


def model_type(model_dir: Path) -> str | None:
    try:
        return json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError):
        return None


def source_key(src: Path) -> str:
    """Hash of the source folder's identity: resolved path + (name, size, mtime) of config and weight files."""
    src = Path(src).resolve()
    h = hashlib.sha256(str(src).encode())
    for f in sorted(src.iterdir()):
        if f.name == "config.json" or f.suffix == ".safetensors" or f.name.endswith(".safetensors.index.json"):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def converted_dir(src: Path, cache_root: Path | None = None) -> Path:
    src = Path(src)
    return (cache_root or models_dir() / ".converted") / f"{src.resolve().name}-{source_key(src)}-llama"


def convert_command(src: Path, cache_root: Path | None = None) -> str:
    return f"suiqa finetune convert {src} {converted_dir(src, cache_root)} --to llama"


def llama_layout_for_gpu(src: Path, policy: str = "convert", cache_root: Path | None = None) -> Path:
    """The folder to serve on the GPU for ``src``: ``src`` itself unless it is in the InternLM2 layout, then its
    cached Llama-layout conversion (made now if missing, when ``policy`` is 'convert')."""
    src = Path(src)
    if model_type(src) != "internlm2":
        return src
    dst = converted_dir(src, cache_root)
    if (dst / MARKER).is_file():
        log.info("InternLM2 checkpoint %s: serving its cached Llama-layout conversion %s", src, dst)
        return dst
    if policy != "convert":
        raise CheckpointLayoutError(
            f"{src} is an InternLM2-layout checkpoint, which vLLM 0.26 cannot serve on the GPU; convert it once "
            f"(bit-exact) with `{convert_command(src, cache_root)}` and point the model at the output, or set "
            "internlm2_layout: convert")
    started = time.perf_counter()
    tmp = dst.with_name(f"{dst.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    log.warning("InternLM2 checkpoint %s: converting once to the Llama layout (vLLM 0.26's InternLM2 fails on the "
                "GPU) into %s", src, dst)
    try:
        _write_llama_layout(src, tmp)
        (tmp / MARKER).write_text(json.dumps({"source": str(src.resolve()), "key": source_key(src),
                                              "converter": "suiqa.models.internlm2_layout.internlm2_to_llama",
                                              "seconds": round(time.perf_counter() - started, 1)}))
        try:
            tmp.rename(dst)
        except OSError:  # another process finished the same conversion first: use its copy
            if not (dst / MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.warning("InternLM2 checkpoint converted in %.1f s: %s", time.perf_counter() - started, dst)
    return dst


def _write_llama_layout(src: Path, dst: Path) -> None:
    """The Llama-layout checkpoint of the InternLM2 one in ``src`` (tensors re-sliced, never recomputed)."""
    from safetensors.torch import load_file, save_file

    from suiqa.models.internlm2_layout import AttentionShape, internlm2_config_to_llama, internlm2_to_llama

    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    state = {}
    for f in sorted(src.glob("*.safetensors")):
        if not f.name.startswith("adapter_"):
            state.update(load_file(str(f)))
    if not state:
        raise CheckpointLayoutError(f"{src} has no *.safetensors weights")
    llama = internlm2_to_llama(state, AttentionShape.from_config(config))
    dst.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in llama.items()}, str(dst / "model.safetensors"), metadata={"format": "pt"})
    (dst / "config.json").write_text(json.dumps(internlm2_config_to_llama(config), indent=2), encoding="utf-8")
    for name in TOKENIZER_FILES:  # verbatim: a re-save by transformers 5 would break transformers 4.x readers
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
