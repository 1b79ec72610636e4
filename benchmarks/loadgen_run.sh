#!/usr/bin/env bash
# `make bench-loadgen`: `suiqa up --profile cpu-tiny-shared`, the three load generators on the domain tier and
# the pipeline (benchmarks/loadgen.py compare), the agent trace captured and replayed with AIPerf (... trace),
# `suiqa down`. It holds the stack's ports for ~15 minutes: run it under the stack lock,
#   flock /tmp/suiqa-stack.lock benchmarks/loadgen_run.sh
# Environment: USERS (4), DURATION (20 s per client run), ROUNDS (3), MAX_TOKENS (32),
# OUT (benchmarks/results/loadgen).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
OUT=${OUT:-benchmarks/results/loadgen}
ARGS=(--users "${USERS:-4}" --duration "${DURATION:-20}" --max-tokens "${MAX_TOKENS:-32}" --out "$OUT")
mkdir -p "$OUT"
"$PY" -m stackctl.cli up --profile cpu-tiny-shared --json > "$OUT/up.json"
trap '"$PY" -m stackctl.cli down' EXIT
"$PY" -m benchmarks.loadgen compare "${ARGS[@]}" --rounds "${ROUNDS:-3}"
"$PY" -m benchmarks.loadgen trace "${ARGS[@]}"
