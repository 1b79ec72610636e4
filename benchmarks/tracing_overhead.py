"""What tracing costs a request: the pipeline with ``tracing.enabled`` off and on, in ONE run.

    python -m benchmarks.tracing_overhead --requests 30 --repeats 3 --concurrency 1 4 --out benchmarks/results/tracing

Each repeat alternates the modes round by round (a round: ``concurrency`` requests at once) against in-process apps:
the real ingress (deployments/api_router.create_app) and the real ReActAgent (draft, forced search, agent turns)
over the stand-in vLLM (benchmarks/standin_vllm, a fast pace: the upstream costs almost nothing, so what tracing adds is
not hidden behind model time). "on" exports every span over OTLP/HTTP (the SDK's exporter, a
BatchSpanProcessor) to a real receiver (benchmarks/fixtures/otlp_receiver.py) in the same process, so the
export's CPU is counted too. Per mode and concurrency: latency per request (median of the repeats' medians,
p95) and process CPU per request; the overhead is on minus off. No Ray here: Serve's proxy adds the same for
both modes, and the spans are made in the replica's process, which this is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import httpx
from tqdm import tqdm

from benchmarks.fixtures.otlp_receiver import OtlpReceiver
from benchmarks.standin_vllm import Pace, StandIn, serve_standin
from benchmarks.stats import distribution, write_json

QUESTION = "隋炀帝开凿了哪条运河？"


def build_app(base: str, endpoint: str | None, knowledge_base):
    """The app and (tracing on) its provider; ``endpoint`` None = tracing off (the default)."""
    from deployments.api_router import create_app
    from deployments.config import ApiSettings
    from deployments.serving_chat import OpenAIServingChat
    from deployments.tracing import OtelAgentHooks, tracer_provider
    from react_tier import ReActAgent

    llm = {"base_url": f"{base}/v1", "max_retries": 0}
    tracing = {"enabled": True, "otlp_endpoint": endpoint} if endpoint else {}
    settings = ApiSettings.load(tracing=tracing, admission={"max_in_flight": 64, "max_queue": 64}, agent={
        "agent_llm": {**llm, "model": "agent"}, "domain_llm": {**llm, "model": "domain"},
        "always_search_first": True})
    provider = tracer_provider(settings.tracing) if endpoint else None
    tracer = provider.get_tracer("bench") if provider else None
    agent = ReActAgent.from_settings(settings.agent, hooks=[OtelAgentHooks(tracer)] if tracer else [],
                                     knowledge_base=knowledge_base)
    return create_app(OpenAIServingChat(settings, agent), tracer=tracer), provider, agent


async def one_request(client: httpx.AsyncClient) -> tuple[float, float]:
    """One streamed chat request: its latency and the process CPU it took (s)."""
    body = {"model": "sui-react", "messages": [{"role": "user", "content": QUESTION}], "stream": True}
    started, cpu = time.perf_counter(), time.process_time()
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200 and "[DONE]" in resp.text, resp.text[:300]
    return time.perf_counter() - started, time.process_time() - cpu


async def measure(clients: dict[str, httpx.AsyncClient], requests: int, concurrency: int
                  ) -> dict[str, dict[str, list[float]]]:
    """``requests`` rounds of ``concurrency`` requests per mode, the modes alternating round by round (so the
    machine's other load falls on both alike); per mode the requests' latencies and CPU (per request: the
    round's CPU over its requests)."""
    found: dict[str, dict[str, list[float]]] = {mode: {"latency": [], "cpu": []} for mode in clients}
    for index in range(requests):
        for mode in (("off", "on") if index % 2 == 0 else ("on", "off")):
            cpu = time.process_time()
            results = await asyncio.gather(*(one_request(clients[mode]) for _ in range(concurrency)))
            found[mode]["latency"] += [latency for latency, _ in results]
            found[mode]["cpu"].append((time.process_time() - cpu) / concurrency)
    return found


def span_cost_us(endpoint: str, spans: int = 3000) -> float:
    """Process CPU per span of the hooks' own kind (open, attributes, note, close, batch export over OTLP/HTTP
    to ``endpoint``), in microseconds: what one span costs, apart from any request."""
    from deployments.config import TracingSettings
    from deployments.tracing import OtelAgentHooks, tracer_provider

    provider = tracer_provider(TracingSettings(enabled=True, otlp_endpoint=endpoint))
    hooks = OtelAgentHooks(provider.get_tracer("bench"))
    cpu = time.process_time()
    with hooks.span("agent.run", {"sui.request_id": "bench"}):
        for index in range(spans - 1):
            with hooks.span("llm.call", {"sui.tier": "agent", "gen_ai.request.model": "agent"}) as note:
                note({"sui.call_id": f"bench.a{index}", "gen_ai.usage.input_tokens": 900})
                hooks.upstream_headers()
    provider.force_flush(30_000)
    provider.shutdown()
    return (time.process_time() - cpu) / spans * 1e6


async def run(requests: int, repeats: int, concurrencies: list[int]) -> dict:
    results: dict[str, dict] = {}
    with serve_standin(StandIn(["agent", "domain"], Pace(0.002, 0.0002, 8))) as base, OtlpReceiver() as receiver:
        from react_tier.knowledge import KnowledgeBase

        knowledge_base = KnowledgeBase.load()  # once, before any pass: loading it is not a request's cost
        apps = {"off": build_app(base, None, knowledge_base), "on": build_app(base, receiver.endpoint,
                                                                                knowledge_base)}
        clients = {mode: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api",
                                           timeout=60) for mode, (app, _, _) in apps.items()}
        for client in clients.values():
            await one_request(client)  # warm-up (connections, first imports): not counted
        for concurrency, repeat in tqdm([(c, r) for c in concurrencies for r in range(repeats)],
                                        desc="tracing overhead", unit="pass", disable=None):
            found = await measure(clients, requests, concurrency)
            for mode, values in found.items():
                results.setdefault(f"{mode}@c{concurrency}", {"mode": mode, "concurrency": concurrency,
                                                               "passes": []})["passes"].append({
                    "repeat": repeat, "latency": distribution([x * 1000 for x in values["latency"]]),
                    "cpu_ms": statistics.median(values["cpu"]) * 1000,
                    "latencies_ms": [round(x * 1000, 2) for x in values["latency"]]})
        apps["on"][1].force_flush(10_000)
        spans = len(receiver.spans)
        for client in clients.values():
            await client.aclose()
        for _, provider, agent in apps.values():
            if provider is not None:
                provider.shutdown()
            await agent.aclose()
        per_span = [span_cost_us(receiver.endpoint) for _ in range(3)]
    for item in results.values():
        passes = item["passes"]
        item["p50_ms"] = statistics.median(p["latency"]["p50"] for p in passes)
        item["p95_ms"] = statistics.median(p["latency"]["p95"] for p in passes)
        item["cpu_ms_per_request"] = statistics.median(p["cpu_ms"] for p in passes)
    traced = 1 + requests * repeats * sum(concurrencies)  # every "on" request, the warm-up included
    return {"requests": requests, "repeats": repeats, "concurrency": concurrencies, "results": results,
            "spans_exported": spans, "spans_per_request": round(spans / traced, 1),
            "span_cost_us": {"runs": [round(x, 1) for x in per_span], "median": round(statistics.median(per_span), 1)}}


def report(data: dict, out: Path, command: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ["| concurrency | p50 off (ms) | p50 on (ms) | p50 added | p95 off | p95 on | CPU/request off (ms) "
            "| CPU/request on (ms) | CPU added |", "|---|---|---|---|---|---|---|---|---|"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, c in enumerate(data["concurrency"]):
        off, on = data["results"][f"off@c{c}"], data["results"][f"on@c{c}"]
        added = on["p50_ms"] - off["p50_ms"]
        cpu_added = on["cpu_ms_per_request"] - off["cpu_ms_per_request"]
        rows.append(f"| {c} | {off['p50_ms']:.1f} | {on['p50_ms']:.1f} | {added:+.1f} ms "
                    f"({added / off['p50_ms']:+.1%}) | {off['p95_ms']:.1f} | {on['p95_ms']:.1f} | "
                    f"{off['cpu_ms_per_request']:.1f} | {on['cpu_ms_per_request']:.1f} | {cpu_added:+.1f} ms "
                    f"({cpu_added / off['cpu_ms_per_request']:+.1%}) |")
        for j, item in enumerate((off, on)):
            values = [x for p in item["passes"] for x in p["latencies_ms"]]
            ax.boxplot(values, positions=[i * 3 + j], widths=0.8, showfliers=False)
    ax.set_xticks([i * 3 + j for i in range(len(data["concurrency"])) for j in (0, 1)],
                  [f"{m}\nc={c}" for c in data["concurrency"] for m in ("off", "on")])
    ax.set_ylabel("request latency (ms)")
    ax.set_title("Pipeline request latency, tracing off vs on (stand-in vLLM)")
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=120)
    text = [f"# Tracing overhead\n\n`{command}`\n", *rows, "",
            f"{data['spans_per_request']} spans per request exported (OTLP/HTTP, BatchSpanProcessor). "
            f"Medians of {data['repeats']} repeats; each repeat is {data['requests']} rounds of `concurrency` "
            "streamed chat requests per mode, the modes alternating round by round (the machine's other load "
            "falls on both alike). The stand-in vLLM answers at once (ttft 2 ms), so the added time is not "
            "hidden behind model time. CPU per request: the process's CPU (stand-in included) per request, "
            "median of the rounds. Plot: latency.png (same command).", "",
            f"One span on its own (open, attributes, close, batch export over OTLP/HTTP; the receiver runs in the "
            "same process, so its parsing is counted too: an upper bound): "
            f"{data['span_cost_us']['median']} µs of CPU (median of 3 runs of 3000: "
            f"{data['span_cost_us']['runs']}), so {data['spans_per_request']} spans are "
            f"{data['span_cost_us']['median'] * data['spans_per_request'] / 1000:.2f} ms of CPU per request.", ""]
    (out / "README.md").write_text("\n".join(text), encoding="utf-8")


def main() -> None:
    import logging

    logging.getLogger("react_tier").setLevel(logging.ERROR)  # a degraded run's step warnings, per request
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30, help="rounds per mode and repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tracing"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = asyncio.run(run(args.requests, args.repeats, args.concurrency))
    command = (f"python -m benchmarks.tracing_overhead --requests {args.requests} --repeats {args.repeats} "
               f"--concurrency {' '.join(map(str, args.concurrency))} --out {args.out}")
    data["command"] = command
    write_json(args.out / "results.json", data)
    report(data, args.out, command)
    print(json.dumps({k: {m: round(v[m], 2) for m in ("p50_ms", "p95_ms", "cpu_ms_per_request")}
                      for k, v in data["results"].items()}, indent=1))


if __name__ == "__main__":
    main()
