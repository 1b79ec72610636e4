#!/bin/bash
# The commands behind report.md / summary.json / canary.png (repository root, SUIQA_HOME=var, under the stack lock).
set -u
suiqa up --profile cpu-tiny-shared
suiqa canary --json > benchmarks/results/canary/http.json
# a broken build: the wrong corpus (the unit tests' 11-record corpus instead of data/) -> refused, exit 1
suiqa canary gate-kb --data-dir tests/data/kb_tiny/data --report benchmarks/results/canary/gate.json
# a sound rebuild of the live index (same data, --force) -> promoted (the previous kept as <key>.previous)
suiqa canary gate-kb --force --report benchmarks/results/canary/gate-good.json
python -m benchmarks.canary_report --http benchmarks/results/canary/http.json \
    --gate benchmarks/results/canary/gate.json --good benchmarks/results/canary/gate-good.json \
    --out benchmarks/results/canary
suiqa down
