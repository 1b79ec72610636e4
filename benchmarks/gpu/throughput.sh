#!/usr/bin/env bash
# The H200 throughput campaign (issue 17), run ON the lent GPU machine from this repo's root, after the GPU kit is
# unpacked (../shared/gpu/README.md) and `. /tmp/site/gpu-env.sh`. One phase per device call (each < 10 min):
#
#   setup      project wheels (.whl, ../.whl or /tmp/whl: pydantic-settings, jieba, bm25s, opencc, rapidfuzz,
#              tenacity, compressed-tensors + loguru), random-weight checkpoints at the real shapes, the domain
#              model's Llama-layout conversion through serving/checkpoint.py (what `suiqa up --profile gpu` does),
#              prompts, then the engine's base and fp8kv runs (`models`: all but the engine runs)
#   engine     offline engine (new prompts every pass, 1 warm-up + 3 measured): baseline = the shipped profile's
#              CUDA graphs to 1024; + fp8 KV cache; + max_num_batched_tokens 65536; + fp8 weights
#   sweep-a    domain tier `vllm serve --api-server-count N`, N = 1, 2 at saturation (vllm bench serve, 1000 x
#              256/256, 1,024 concurrent, 3 passes) + both clients at 256 concurrent (N = 2)
#   sweep-b    the same for N = 4, 8
#   pipeline   domain + agent vLLM (left running), Ray Serve variant `base` (api-gpu-bench as shipped): Locust
#              at 1 ... 1024 users, vllm bench serve at 32 and 256, Ray workers sampled + CPU per process at 256
#   variants   Ray Serve variants on the same vLLM servers: 8 fixed replicas; + RAY_SERVE_THROUGHPUT_OPTIMIZED;
#              + program-aware priorities; then the vLLM servers are stopped
#   llm-up     only the domain + agent vLLM servers of `pipeline` (left running for the next call); AGENT_REPLICAS=2
#              starts a second agent server on the GPU (run-affine replicas of the tier), AGENT_ARGS more
#              overrides, e.g. "--agent gpu_memory_utilization=0.2 --agent max_num_batched_tokens=1024"
#              WITH_PROFILER=1 arms the agent tier's torch profiler (idle until `trace` starts it)
#   agent-up   only the agent tier again (its servers stopped, the domain tier of llm-up kept: ~90 s less than llm-down
#              + llm-up), with AGENT_REPLICAS and AGENT_ARGS as for llm-up
#   step       issue 24's step load on the running servers: a fresh deployment (replicas at the autoscaler's start)
#              meets STEP_C clients (256) at once for STEP_S seconds (45), then another fresh one meets STEP_C2 (1024);
#              refusals, answers and replicas per second (benchmarks/gpu/step_load.py) -> $R/step
#   bound      issue 24, on the vLLM servers of llm-up (left running): the card's bandwidth and matmul rate
#              (benchmarks/roofline.py --measure), then Serve variant `base` (api-gpu-bench as shipped) at USERS
#              (32,128,256) with vllm bench serve at 32 and 256; every step wrapped in benchmarks/timeline.py's probe
#              (CPU per run per process kind, the run's timeline through proxy / ingress / each tier's vLLM, GPU
#              utilisation and each engine's running/waiting once a second)
#   capacity   the same probe on variant `cap` (CAP_API: admission sized from the CPU harness) at CAP_USERS
#   trace      the agent tier again with vLLM's torch profiler, the pipeline at TRACE_USERS (128), TRACE_ITERS engine
#              steps traced, then benchmarks/gpu/trace_summary.py: GPU busy, CUDA API waits, host work -> $R/trace
#              (TRACE_ON_RUNNING=1: on the agent tier of `WITH_PROFILER=1 ... llm-up`, no restart)
#   sched      fcfs vs program priority vs deadline order at saturation (SCHED_USERS), same servers
#   shared     the next lease's first phase (issue 24, report of 2026-12-06 "Next phases"): ONE vLLM server answers
#              both roles (no two engines time-slicing the GPU), api-server-count 4, then variant `shared` at
#              USERS with both clients at 32 and 128 (below capacity); the server is stopped at the end
#   mps-up     the NVIDIA MPS daemon, then llm-up: the two engines share the SMs (run `bound` NAME=mps next)
#   mps-down   stop the vLLM servers and the MPS daemon
#   soak       issue 13's bounded soak on the gpu-bench deployment (vLLM from llm-up), per variant in
#              SOAK_VARIANTS (`shipped`: Ray's proxy refuses beyond its queue and each replica's 32 runs (32 + 24
#              queued before 2026-12-07's lease 3);
#              `replica-shed`: the design before deployments/middleware.py, max_ongoing_requests 256, the replicas
#              refuse; `queue8`: admission.max_queue 8): SOAK_C clients (320: above 4 replicas x 32 runs + the
#              proxy's 128, so the proxy sheds until the autoscaler adds replicas) for SOAK_S
#              seconds (150) -> benchmarks/results/soak/h200/<variant>, then BURST_C clients (1024) for BURST_S
#              seconds (40) -> .../<variant>-overload; then the vLLM servers stop
#
# Results land in benchmarks/results/h200/throughput/ and go back as $OUT/tp-<phase>.tgz.
set -uo pipefail
phase=${1:?phase}
R=${R:-benchmarks/results/h200/throughput}  # issue 24's lease: R=benchmarks/results/gpu/<date>
M=/tmp/models
mkdir -p "$R"
export PYTHONUNBUFFERED=1 SUIQA_HOME=/tmp/suiqa VLLM_NO_USAGE_STATS=1 OMP_NUM_THREADS=1
export JAX_PLATFORMS=cpu  # bm25s imports jax when present; jax would preallocate 75% of the GPU in the drivers
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
CG='compilation_config={"max_cudagraph_capture_size": 1024}'
# vLLM's torch profiler on the agent tier (for `trace`): armed at start-up, idle until /start_profile
PROFILER="extra_args=[\"--profiler-config\",\"{\\\"profiler\\\":\\\"torch\\\",\\\"torch_profiler_dir\\\":\\\"/tmp/vtrace\\\",\\\"ignore_frontend\\\":true,\\\"torch_profiler_with_stack\\\":false,\\\"max_iterations\\\":${TRACE_ITERS:-300}}\"]"
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

engine() {  # name, then engine_bench arguments
    local name=$1; shift
    stamp "engine $name: $*"
    timeout 200 python3 -m benchmarks.engine_bench --model "$(cat /tmp/domain_llama)" --dtype bfloat16 \
        --num-prompts 1000 --input-len 256 --output-len 256 --passes 4 --warmup-passes 1 --name "$name" \
        --out "$R/engine/$name" "$@" > "$R/engine/$name.log" 2>&1
    echo "   exit $?"; grep -E "^(pass|best)|Error|error:" "$R/engine/$name.log" | tail -7
}

llm_up() {  # more arguments go to pipeline_bench llm-up (--only agent)
    stamp "llm-up $*"
    # the vLLM processes carry the stdlib sampler (benchmarks/gpu/sampler), armed by a variant's --profile-at step
    mkdir -p /tmp/suiqa-samples/vllm
    SUIQA_SAMPLE_DIR=/tmp/suiqa-samples/vllm PYTHONPATH="$PWD/benchmarks/gpu/sampler:$PYTHONPATH" \
    timeout 300 python3 -m benchmarks.gpu.pipeline_bench llm-up --stack gpu-bench --domain-model "$M/domain-internlm2" \
        --agent-model "$M/agent-qwen2" --domain api_server_count=${DOMAIN_N:-2} --agent api_server_count=${AGENT_N:-4} \
        --agent 'scheduling_policy="priority"' --domain 'scheduling_policy="priority"' \
        --agent-replicas ${AGENT_REPLICAS:-1} ${AGENT_ARGS:-} "$@" 2>&1 | grep -E "ready in|stopped|Error|error|in use" | tail -6
}

case "$phase" in
setup|models)
    W=.whl; [ -d "$W" ] || W=../.whl; [ -d "$W" ] || W=/tmp/whl
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$W"/*.whl \
        || { echo "WHEELS_FAIL"; exit 1; }
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$R/nvidia-smi.txt"
    # the host's CPU too: the engine core's step loop is CPU-bound (issue 24), so two hosts with one GPU kind differ
    lscpu | grep -E "^(Model name|CPU\(s\)|Thread|CPU max MHz)" | tee -a "$R/nvidia-smi.txt"
    python3 - <<'PY'
import logging, time
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
from suiqa.models.builder import BuildSpec, build_models
from serving.checkpoint import llama_layout_for_gpu
t = time.perf_counter()
paths = build_models(Path("/tmp/models"), BuildSpec(domain_shape="internlm2-1_8b", agent_shape="qwen2_5-1_5b"),
                     device="cuda")
print("models", {k: str(v) for k, v in paths.items()}, f"{time.perf_counter() - t:.1f} s")
t = time.perf_counter()
llama = llama_layout_for_gpu(paths["domain"], "convert")
print("domain Llama layout", llama, f"{time.perf_counter() - t:.1f} s")
Path("/tmp/domain_llama").write_text(str(llama))
PY
    [ "$phase" = models ] && exit 0
    python3 -m benchmarks.gpu.make_prompts --tokenizer "$M/domain-internlm2" --tokens 256 --n 2000 --out /tmp/prompts256.txt
    mkdir -p "$R/engine"
    engine base --engine-arg "$CG"
    engine fp8kv --engine-arg "$CG" --engine-arg kv_cache_dtype=fp8
    ;;
engine)
    mkdir -p "$R/engine"
    engine mnbt65536 --engine-arg "$CG" --engine-arg max_num_batched_tokens=65536
    engine fp8w --engine-arg "$CG" --engine-arg quantization=fp8
    ;;
sweep-a)
    timeout 560 python3 -m benchmarks.gpu.domain_sweep --model "$M/domain-internlm2" --counts 1,2 --passes 3 \
        --compare-at 2 --out "$R/domain" 2>&1 | grep -v "^INFO\|^(APIServer\|^(EngineCore" | tail -40
    ;;
sweep-b)
    timeout 560 python3 -m benchmarks.gpu.domain_sweep --model "$M/domain-internlm2" --counts ${COUNTS:-4,8} \
        --passes 3 --out "$R/domain" 2>&1 | grep -v "^INFO\|^(APIServer\|^(EngineCore" | tail -40
    ;;
llm-up)
    # WITH_PROFILER=1: the agent tier armed for `trace` (TRACE_ON_RUNNING=1 then skips its restart: ~115 s of a lease)
    if [ -n "${WITH_PROFILER:-}" ]; then rm -rf /tmp/vtrace && mkdir -p /tmp/vtrace && llm_up --agent "$PROFILER"; else llm_up; fi
    ;;
agent-up)
    llm_up --only agent
    ;;
step)
    for c in ${STEP_C:-256} ${STEP_C2:-1024}; do
        stamp "step 0 -> $c clients"
        timeout 200 python3 -m benchmarks.gpu.pipeline_bench variant --name step-$c --users "" \
            --soak "${STEP_S:-45}:$c:$R/step/${STEP_NAME:-base}-$c" --soak-sample-s 1 --out "$R/pipeline" 2>&1 \
            | grep -v "^INFO\|^(\|WARNING" | cut -c1-200 | tail -25
    done
    python3 -m benchmarks.gpu.step_load "$R"/step/${STEP_NAME:-base}-* --bin-s 5 --out "$R/step/${STEP_NAME:-base}.json" \
        --png "$R/step/${STEP_NAME:-base}.png"
    stamp "done"
    ;;
bound)
    stamp "roofline"
    [ -n "${NO_ROOFLINE:-}" ] || timeout 60 python3 -m benchmarks.roofline --measure --json "$R/roofline-$(date +%Y%m%d).json" 2>&1 | tail -3
    stamp "variant base"
    timeout ${BOUND_S:-420} python3 -m benchmarks.gpu.pipeline_bench variant --name ${NAME:-base} \
        --users ${USERS:-32,128,256} --duration ${DUR:-15s} --compare-at "${COMPARE-32,256}" --passes ${PASSES:-1} \
        ${PROFILE_AT:+--profile-at $PROFILE_AT} --out "$R/pipeline" 2>&1 \
        | grep -v "^INFO\|^(\|WARNING" | cut -c1-400 | tail -40
    stamp "done"
    ;;
trace)
    # issue 24, lease 3's next phase: the agent tier restarted with vLLM's torch profiler, the pipeline at
    # TRACE_USERS clients, and TRACE_ITERS engine steps traced from TRACE_AT_S seconds in (inside the load window:
    # Serve takes ~35 s to deploy); benchmarks/gpu/trace_summary.py splits the step loop into GPU busy, CUDA API
    # waits and host work (a Python sampler counts a copy that waits for the stream as busy)
    mkdir -p "$R/trace"
    [ -n "${TRACE_ON_RUNNING:-}" ] || { rm -rf /tmp/vtrace && mkdir -p /tmp/vtrace && llm_up --only agent --agent "$PROFILER"; }
    ( sleep "${TRACE_AT_S:-55}"; stamp "start_profile"; curl -s -X POST http://127.0.0.1:8001/start_profile
      sleep 20; curl -s -X POST http://127.0.0.1:8001/stop_profile; stamp "stop_profile" ) &
    timeout 300 python3 -m benchmarks.gpu.pipeline_bench variant --name trace --users ${TRACE_USERS:-128} \
        --duration ${DUR:-30s} --compare-at "" --out "$R/pipeline" 2>&1 | grep -v "^INFO\|^(\|WARNING" | cut -c1-300 | tail -6
    wait
    python3 -m benchmarks.gpu.trace_summary /tmp/vtrace --json "$R/trace/agent.json"
    ls -la /tmp/vtrace | head; stamp "done"
    ;;
sched)
    # the priority policy with equal priorities is FCFS (ties by arrival), so one pair of servers serves all three
    for order in fcfs program deadline; do
        api=$(python3 -c "import json,sys; a=json.loads(sys.argv[1]); e={'ignore_eos': True}
if sys.argv[2] != 'fcfs': e['priority'] = sys.argv[2]
a.setdefault('agent', {}).update(domain_llm={'extra_body': e}, agent_llm={'extra_body': e}); print(json.dumps(a))" \
            "${CAP_API:?}" "$order")
        stamp "sched $order"
        timeout 200 python3 -m benchmarks.gpu.pipeline_bench variant --name sched-$order --users ${SCHED_USERS:-1024} \
            --duration ${DUR:-20s} --api "$api" --out "$R/pipeline" 2>&1 | grep -v "^INFO\|^(\|WARNING" | cut -c1-300 | tail -6
    done
    stamp "done"
    ;;
mps-up)
    # NVIDIA MPS: the two engines' kernels share the SMs instead of time-slicing the GPU between two contexts (the
    # 2026-12-06 lease: decode 3.7 ms/token at 32 clients for 1.5B/1.8B models, GPU "busy" 56-76 %). A user-space
    # daemon (the default pipe dir /tmp/nvidia-mps, so every CUDA process on the machine finds it); the GPU's
    # compute mode is left as it is. Then llm-up (both tiers are clients of the daemon) for `bound` NAME=mps.
    python3 -m benchmarks.gpu.pipeline_bench llm-down >/dev/null 2>&1
    mkdir -p /tmp/nvidia-mps /tmp/nvidia-mps-log
    CUDA_MPS_LOG_DIRECTORY=/tmp/nvidia-mps-log nvidia-cuda-mps-control -d && stamp "MPS daemon up" \
        || { echo "MPS_FAIL: no daemon"; exit 1; }
    timeout 60 python3 -c "import torch; x = torch.ones(1024, device='cuda'); print('MPS client ok', float(x.sum()))" \
        || { echo quit | nvidia-cuda-mps-control; echo "MPS_FAIL: a CUDA client does not start"; exit 1; }
    llm_up
    ;;
mps-down)
    python3 -m benchmarks.gpu.pipeline_bench llm-down >/dev/null 2>&1
    echo quit | nvidia-cuda-mps-control; sleep 2; stamp "MPS daemon stopped"
    ;;
shared)
    python3 -m benchmarks.gpu.pipeline_bench llm-down >/dev/null 2>&1
    sed 's/^agent_profile: .*/agent_profile: null/' stackctl/profiles/gpu-bench.yaml > /tmp/gpu-bench-shared.yaml
    stamp "llm-up shared"
    mkdir -p /tmp/suiqa-samples/vllm
    SUIQA_SAMPLE_DIR=/tmp/suiqa-samples/vllm PYTHONPATH="$PWD/benchmarks/gpu/sampler:$PYTHONPATH" \
    timeout 300 python3 -m benchmarks.gpu.pipeline_bench llm-up --stack /tmp/gpu-bench-shared.yaml \
        --domain-model "$M/domain-internlm2" --agent-model x --domain api_server_count=4 \
        --domain gpu_memory_utilization=0.85 2>&1 | grep -E "ready in|Error|error" | tail -4
    stamp "variant shared"
    timeout 420 python3 -m benchmarks.gpu.pipeline_bench variant --stack /tmp/gpu-bench-shared.yaml --name shared \
        --users ${USERS:-32,128,256} --duration ${DUR:-15s} --compare-at ${COMPARE:-32,128} \
        ${PROFILE_AT:+--profile-at $PROFILE_AT} --out "$R/pipeline" 2>&1 | grep -v "^INFO\|^(\|WARNING" | cut -c1-400 | tail -40
    python3 -m benchmarks.gpu.pipeline_bench llm-down
    stamp "done"
    ;;
capacity)
    stamp "variant cap"
    timeout 420 python3 -m benchmarks.gpu.pipeline_bench variant --name ${CAP_NAME:-cap} --users ${CAP_USERS:-256,512,1024} \
        --duration ${DUR:-15s} --api "${CAP_API:?}" --compare-at ${COMPARE:-} --out "$R/pipeline" 2>&1 \
        | grep -v "^INFO\|^(\|WARNING" | cut -c1-400 | tail -40
    stamp "done"
    ;;
soak)
    S=${SOAK_DIR:-benchmarks/results/soak/h200}
    for v in ${SOAK_VARIANTS:-shipped}; do
        api='{}' ray_env=RAY_DEDUP_LOGS=0
        [ "$v" = queue8 ] && api='{"admission": {"max_queue": 8}}'
        if [ "$v" = replica-shed ]; then
            api='{"agent_deployment": {"max_ongoing_requests": 256, "max_queued_requests": 256}}'
            ray_env=RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=
        fi
        stamp "soak $v"
        timeout 280 python3 -m benchmarks.gpu.pipeline_bench variant --name "soak-$v" --users "" --api "$api" \
            --ray-env "$ray_env" \
            --soak "${SOAK_S:-150}:${SOAK_C:-320}:$S/$v" --soak "${BURST_S:-40}:${BURST_C:-1024}:$S/$v-overload" \
            --out "$R/pipeline" 2>&1 | grep -v "^INFO\|^(\|WARNING" | cut -c1-200 | tail -90  # the runner's brief
        # packed per variant: a later one cut by a timeout loses only itself (lease 2 lost its second variant so)
        mkdir -p "${OUT:-/tmp/out}" && tar czf "${OUT:-/tmp/out}/soak-$v.tgz" "$S/$v" "$S/$v-overload"
    done
    python3 -m benchmarks.gpu.pipeline_bench llm-down
    stamp "done"
    tar czf "${OUT:-/tmp/out}/soak-logs.tgz" /tmp/suiqa/logs 2>/dev/null
    ls -la "${OUT:-/tmp/out}"; exit 0
    ;;
pipeline)
    llm_up
    stamp "variant base"
    timeout 420 python3 -m benchmarks.gpu.pipeline_bench variant --name ${NAME:-base} --users ${USERS:-1,8,32,128,256,512,1024} \
        --duration ${DUR:-15s} --compare-at 32,256 --profile-at 256 --out "$R/pipeline" 2>&1 | grep -v "^INFO" | tail -30
    stamp "done"
    ;;
variants)
    WIDE='{"agent_deployment": {"autoscaling": null, "num_replicas": 8, "max_ongoing_requests": 192, "max_queued_requests": 1024}}'
    PRIO='{"agent_deployment": {"autoscaling": null, "num_replicas": 8, "max_ongoing_requests": 192, "max_queued_requests": 1024}, "agent": {"agent_llm": {"extra_body": {"ignore_eos": true, "priority": "program"}}}}'
    stamp "variant wide8"
    timeout 150 python3 -m benchmarks.gpu.pipeline_bench variant --name wide8 --users 256,512,1024 --duration 15s \
        --api "$WIDE" --profile-at 512 --out "$R/pipeline" 2>&1 | grep -v "^INFO" | tail -8
    stamp "variant wide8-tput"
    timeout 150 python3 -m benchmarks.gpu.pipeline_bench variant --name wide8-tput --users 256,512,1024 --duration 15s \
        --api "$WIDE" --ray-env RAY_SERVE_THROUGHPUT_OPTIMIZED=1 --out "$R/pipeline" 2>&1 | grep -v "^INFO" | tail -8
    stamp "variant wide8-prio"
    timeout 150 python3 -m benchmarks.gpu.pipeline_bench variant --name wide8-prio --users 256,512,1024 --duration 15s \
        --api "$PRIO" ${PRIO_ENV:-} --out "$R/pipeline" 2>&1 | grep -v "^INFO" | tail -8
    python3 -m benchmarks.gpu.pipeline_bench llm-down
    stamp "done"
    ;;
*) echo "unknown phase $phase"; exit 2 ;;
esac
mkdir -p "${OUT:-/tmp/out}" && tar czf "${OUT:-/tmp/out}/tp-$phase.tgz" --exclude='raw' --exclude='*-locust-raw' "$R"
tar czf "${OUT:-/tmp/out}/logs-$phase.tgz" /tmp/suiqa/logs 2>/dev/null
ls -la "${OUT:-/tmp/out}"
