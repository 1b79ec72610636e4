#!/bin/bash
# The run behind report.md / answers.json / answers.png: repository root, no stack up, SUIQA_HOME=var (the tiny
# models and the knowledge-base index already built there). make eval-answers = flock /tmp/suiqa-stack.lock
# python -m benchmarks.eval_answers, which ran `suiqa up --profile cpu-tiny-shared`, the 213 questions of dev,
# heldout and heldout30 (concurrency 4, sui_cache off), then `suiqa down` (2 min 37 s in all, load average 3-5:
# the machine was shared with a niced mutation-testing job). Tiny random-weight models: a plumbing check, not quality.
set -eu
make eval-answers
