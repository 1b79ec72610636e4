#!/bin/bash
# The commands behind report.md / summary.json / canary.png (run from the repository root, under the stack lock).
set -u
suiqa up --profile cpu-tiny-shared
suiqa canary --json > benchmarks/results/canary/http.json
suiqa canary gate-kb --data-dir tests/data/kb_tiny/data --report benchmarks/results/canary/gate.json  # exit 1
python -m benchmarks.canary_report --http benchmarks/results/canary/http.json \
    --gate benchmarks/results/canary/gate.json --out benchmarks/results/canary
suiqa down
