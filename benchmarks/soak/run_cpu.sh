#!/usr/bin/env bash
# The CPU soak: `suiqa up --profile cpu-tiny-shared`, 10 minutes of steady load (benchmarks/soak/run.py), `suiqa down`.
# It holds the machine's stack ports for ~12 minutes: run it under the stack lock,
#   flock /tmp/suiqa-stack.lock benchmarks/soak/run_cpu.sh
# Environment: DURATION_S (600), CONCURRENCY (6: above the demo replica's 4 admitted runs, so its queue is used),
# OUT (benchmarks/results/soak/cpu).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
OUT=${OUT:-benchmarks/results/soak/cpu}
mkdir -p "$OUT"
"$PY" -m stackctl.cli up --profile cpu-tiny-shared --json > "$OUT/up.json"
trap '"$PY" -m stackctl.cli down' EXIT
API=$("$PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["api"].removesuffix("/v1"))' "$OUT/up.json")
"$PY" -m benchmarks.soak.run --url "$API" --duration-s "${DURATION_S:-600}" --concurrency "${CONCURRENCY:-6}" \
  --out "$OUT" | tee "$OUT/brief.json"
