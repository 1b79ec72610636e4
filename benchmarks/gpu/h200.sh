#!/usr/bin/env bash
# The H200 campaign (issue 8), run ON the lent GPU machine from the repo root, after the GPU kit is unpacked
# (../shared/gpu/README.md) and `. /tmp/site/gpu-env.sh`. One phase per device call:
#
#   setup     project wheels (.whl), random-weight checkpoints at the real shapes, roofline with measured BW/FLOPs
#   engine-a  offline engine: stock, CUDA-graph capture up to 1024
#   engine-b  offline engine: async scheduling, stock again (interleaved), fp8 weights
#   engine-c  offline engine: the best combination (BEST_ARGS); HF generate baseline; PEFT LoRA throughput
#   online    `suiqa up --profile gpu-bench` (domain + agent vLLM, KB, Ray Serve); Locust sweep on the domain tier
#   pipeline  Locust sweep on the pipeline API; prefix-cache counters; `suiqa down`
#
# Everything lands in benchmarks/results/h200/ (copied to $OUT as one tarball per phase, plus the phase log).
set -uo pipefail
phase=${1:?phase}
R=benchmarks/results/h200
M=/tmp/models
mkdir -p "$R/engine" "$R/online"
export PYTHONUNBUFFERED=1 SUIQA_HOME=/tmp/suiqa VLLM_NO_USAGE_STATS=1
# the gpu profiles require API keys: one per run, sent by Locust (BENCH_API_KEY) and `vllm bench` (OPENAI_API_KEY)
BENCH_KEY=${BENCH_API_KEY:-$(python3 -c "import secrets; print(secrets.token_hex(16))")}
export SUIQA_API_API_KEYS=${SUIQA_API_API_KEYS:-bench:$BENCH_KEY} BENCH_API_KEY=$BENCH_KEY OPENAI_API_KEY=$BENCH_KEY

engine() {  # name, then engine_bench arguments
    local name=$1; shift
    echo "== engine $name: $*"
    timeout 240 python3 -m benchmarks.engine_bench --model "$M/domain-llama" --dtype bfloat16 \
        --num-prompts 1000 --input-len 256 --output-len 256 --passes 4 --name "$name" --out "$R/engine/$name" "$@" \
        > "$R/engine/$name.log" 2>&1
    echo "   exit $?"; grep -E "^(pass|best)|Error|error:" "$R/engine/$name.log" | tail -8
}

case "$phase" in
setup)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$R/nvidia-smi.txt"
    python3 - <<'PY'
import time
from pathlib import Path
from suiqa.models.builder import BuildSpec, build_models
t = time.perf_counter()
paths = build_models(Path("/tmp/models"), BuildSpec(domain_shape="internlm2-1_8b", agent_shape="qwen2_5-1_5b"),
                     device="cuda")
print("models", {k: str(v) for k, v in paths.items()}, f"{time.perf_counter() - t:.1f} s")
PY
    python3 -m benchmarks.roofline --measure --json "$R/roofline.json" | tee "$R/roofline.txt"
    python3 -m benchmarks.gpu.make_prompts --tokenizer "$M/domain-internlm2" --tokens 256 --n 2000 --out /tmp/prompts256.txt
    ;;
engine-a)
    engine stock
    engine cudagraph1024 --engine-arg 'compilation_config={"max_cudagraph_capture_size": 1024}'
    ;;
engine-b)
    CG='compilation_config={"max_cudagraph_capture_size": 1024}'
    engine cudagraph1024+async --engine-arg "$CG" --engine-arg async_scheduling=True
    engine stock-2
    engine cudagraph1024+fp8-weights --engine-arg "$CG" --engine-arg quantization=fp8
    ;;
engine-c)
    [ -n "${BEST_ARGS:-}" ] && eval "engine ${BEST_NAME:-best} $BEST_ARGS"
    echo "== HF generate, one request at a time (the seed's serving)"
    timeout 120 python3 -m benchmarks.hf_generate_bench --model "$M/domain-internlm2" --num-prompts 3 --input-len 256 \
        --output-len 256 --dtype bfloat16 --device cuda --name hf-generate --out "$R/hf-generate" 2>&1 | tail -4
    echo "== PEFT LoRA training throughput"
    timeout 200 python3 -m finetune.bench_lora --shape internlm2-1_8b --steps 20 --warmup 3 --batch-size 4 \
        --seq-len 1024 --r 64 --json "$R/lora_train_internlm2_1_8b.json" 2>&1 | tail -4
    ;;
online)
    SUIQA_DOMAIN_MODEL=$M/domain-llama SUIQA_AGENT_MODEL=$M/agent-qwen2 \
        timeout 400 python3 -m stackctl.cli up --profile gpu-bench 2>&1 | grep -v "passage/s" | tail -12
    curl -s localhost:8000/metrics | grep -E "^vllm:(cache_config_info|num_gpu_blocks)" | head -3
    timeout 330 python3 -m benchmarks.runner --host http://127.0.0.1:8000 --model internlm2-chat-sui --api completions \
        --prompts /tmp/prompts256.txt --max-tokens 256 --users 1,8,32,128,256,512 --duration 15s --processes 6 \
        --slo-ttft-ms 1000 --slo-tpot-ms 50 --name domain-online --out "$R/online/domain" 2>&1 | tail -8
    ;;
pipeline)
    timeout 300 python3 -m benchmarks.runner --host http://127.0.0.1:8080 --model sui-react --api chat \
        --users 1,8,32,64 --duration 25s --processes 2 --slo-ttft-ms 5000 --slo-tpot-ms 100 \
        --name pipeline-online --out "$R/online/pipeline" 2>&1 | tail -6
    for port in 8000 8001; do
        curl -s "localhost:$port/metrics" | grep -E "^vllm:prefix_cache_(hits|queries)_total" > "$R/online/prefix-cache-$port.txt"
        cat "$R/online/prefix-cache-$port.txt"
    done
    curl -s localhost:8090/metrics | grep -E "^ray_sui_(finish_reasons_total|agent_steps_(sum|count)|request_e2e_seconds_(sum|count))" \
        > "$R/online/ray-sui-metrics.txt"; head -20 "$R/online/ray-sui-metrics.txt"
    python3 -m stackctl.cli down
    ;;
*) echo "unknown phase $phase"; exit 2 ;;
esac
mkdir -p "${OUT:-/tmp/out}" && tar czf "${OUT:-/tmp/out}/h200-$phase.tgz" "$R"
