"""Where an agent run's time and the host's CPU go during one load step: the instruments that locate the bound.

Issue 24: the pipeline plateaued at ~22 runs/s with the host 91% idle and the GPU "0%" at a few sampled instants,
and nobody could say what bounded it. One step of load is read from four places at once, all of them cumulative
counters taken before and after the step (so nothing is sampled at a lucky instant):

- **CPU per run per process kind** (:func:`cpu_times`): every process's user+system CPU seconds from ``/proc``
  (psutil), grouped by what it is (Serve proxy, Serve replica, vLLM front end / engine core per tier, the load
  client, the stand-in upstream, Ray's system processes) and divided by the runs the step completed. A process kind
  with one process per node (the proxy) caps the node at ``1000 / ms-per-run`` runs/s; this is the number that
  predicts a plateau before any GPU is lent (benchmarks/cpu_harness.py). A process that ends within the step (the
  load client itself) is not counted.
- **The run's timeline** (:func:`decompose`): means from the histograms the stack already exports, per step:
  the client's latency (Locust) > Ray's proxy (``ray_serve_http_request_latency_ms``) > the ingress
  (``sui_request_e2e_seconds``) > the run's upstream calls per tier (``sui_llm_call_seconds``, seen from the replica)
  and tools (``sui_tool_latency_seconds``) > each call inside vLLM (``vllm:e2e_request_latency_seconds`` split into
  ``queue``, ``prefill``, ``decode``). A gap between two levels is time spent in the layer between them.
- **The engines over time** (:class:`Sampler`, once a second): GPU utilisation (NVML, when there is a GPU) and each
  tier's ``vllm:num_requests_running`` / ``waiting``.

Prometheus text is parsed with ``prometheus_client.parser`` (the library that writes it), not with regexes.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

# ------------------------------------------------------------------------------------------------ CPU per process

KINDS = (  # (substring of the command line, kind), first match wins
    ("ServeReplica", "serve replica"), ("ProxyActor", "serve proxy"), ("ServeController", "serve controller"),
    ("EngineCore", "vllm engine core"), ("VLLM::Worker", "vllm engine core"), ("APIServer", "vllm front end"),
    ("vllm.entrypoints", "vllm front end"),
    ("vllm serve", "vllm front end"), ("standin_vllm", "stand-in upstream"), ("locust", "load client"),
    ("vllm_bench", "load client"), ("vllm bench", "load client"), ("benchmarks.soak", "load client"),
    ("raylet", "ray system"), ("gcs_server", "ray system"), ("ray/dashboard", "ray system"),
    ("log_monitor", "ray system"), ("ray::", "ray system"), ("default_worker", "ray system"),
)


def kind_of(cmdline: str) -> str:
    for needle, kind in KINDS:
        if needle in cmdline:
            return kind
    return "other"


def _port_of(cmd: list[str]) -> str | None:
    for i, arg in enumerate(cmd):
        if arg == "--port" and i + 1 < len(cmd):
            return cmd[i + 1]
        if arg.startswith("--port="):
            return arg.split("=", 1)[1]
    return None


def _tier(proc: psutil.Process, tiers: dict[str, str]) -> str | None:
    """The vLLM tier a process belongs to: the ``--port`` of its own or an ancestor's command line."""
    try:
        for p in [proc, *proc.parents()]:
            port = _port_of(p.cmdline())
            if port is not None:
                return tiers.get(port)
    except psutil.Error:
        pass
    return None


def _vllm_parent(proc: psutil.Process) -> bool:
    """A multiprocessing child of a vLLM server (API servers and engine core where vLLM cannot set their titles)."""
    try:
        return any("vllm" in " ".join(p.cmdline()) for p in proc.parents()[:2])
    except psutil.Error:
        return False


def cpu_times(tiers: dict[str, str] | None = None) -> dict[int, dict]:
    """{pid: {cpu_s, kind, cmd}} of every process now; vLLM processes get their tier (``tiers``: port -> name)."""
    out = {}
    for p in psutil.process_iter(["pid", "cmdline", "name", "cpu_times"]):
        try:
            cmd = p.info["cmdline"] or [p.info["name"] or ""]
            line = " ".join(cmd)
            kind = kind_of(line)
            if kind == "other" and "spawn_main" in line and _vllm_parent(p):  # the kit's vLLM names no process
                kind = "vllm process"
            if kind.startswith("vllm") and tiers:
                kind = f"{kind} ({_tier(p, tiers) or '?'})"
            t = p.info["cpu_times"]
            out[p.pid] = {"cpu_s": t.user + t.system, "kind": kind, "cmd": line[:160]}
        except (psutil.Error, TypeError, AttributeError):
            continue
    return out


def cpu_per_kind(before: dict[int, dict], after: dict[int, dict], seconds: float, runs: int) -> list[dict]:
    """Per process kind: processes, cores used (CPU seconds / wall seconds), CPU ms per completed run, and the busiest
    process's share of a core. A process born during the step counts from zero."""
    by_kind: dict[str, dict] = defaultdict(lambda: {"processes": 0, "cpu_s": 0.0, "busiest_core": 0.0,
                                                    "busiest": ""})
    for pid, row in after.items():
        used = row["cpu_s"] - before.get(pid, {"cpu_s": 0.0})["cpu_s"]
        if used < 0:  # a pid reused by another process
            used = row["cpu_s"]
        k = by_kind[row["kind"]]
        k["processes"] += 1
        k["cpu_s"] += used
        if seconds and used / seconds >= k["busiest_core"]:
            k["busiest_core"], k["busiest"] = used / seconds, row["cmd"][:100]
    rows = []
    for kind, k in by_kind.items():
        if k["cpu_s"] < 0.005 and kind == "other":
            continue
        rows.append({"kind": kind, "processes": k["processes"], "cores": round(k["cpu_s"] / seconds, 3),
                     "busiest_core": round(k["busiest_core"], 3), "busiest": k["busiest"],
                     "cpu_ms_per_run": round(1000 * k["cpu_s"] / runs, 2) if runs else None})
    rows.sort(key=lambda r: -r["cores"])
    return rows


# ------------------------------------------------------------------------------------------------ Prometheus

def scrape(url: str | list[str], timeout_s: float = 10.0) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of one /metrics endpoint; {} when it does not answer. A list of
    endpoints (one tier served by several vLLM servers) gives their sums: counters, histograms' sums and counts and
    gauges such as running requests add up across servers."""
    if isinstance(url, list):
        out: dict[tuple, float] = {}
        for one in url:
            for key, value in scrape(one, timeout_s).items():
                out[key] = out.get(key, 0.0) + value
        return out
    try:
        text = httpx.get(url, timeout=timeout_s).text
    except httpx.HTTPError:
        return {}
    out: dict[tuple, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(samples: dict[tuple, float], name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(v for (n, lab), v in samples.items()
               if n == name and all(dict(lab).get(k) == want for k, want in labels.items()))


def hist_mean(before: dict, after: dict, name: str, **labels: str) -> dict:
    """Mean and count of a histogram over a step, from its ``_sum`` and ``_count`` deltas."""
    n = total(after, f"{name}_count", **labels) - total(before, f"{name}_count", **labels)
    s = total(after, f"{name}_sum", **labels) - total(before, f"{name}_sum", **labels)
    return {"count": round(n), "mean": round(s / n, 4) if n > 0 else None}


VLLM_PHASES = {"e2e": "vllm:e2e_request_latency_seconds", "queue": "vllm:request_queue_time_seconds",
               "prefill": "vllm:request_prefill_time_seconds", "decode": "vllm:request_decode_time_seconds",
               "ttft": "vllm:time_to_first_token_seconds"}


TOKEN_COUNTERS = {"prompt_tokens": "vllm:prompt_tokens_total", "generated_tokens": "vllm:generation_tokens_total",
                  "cached_tokens": "vllm:prefix_cache_hits_total"}


def decompose(before: dict[str, dict], after: dict[str, dict], runs: int,
              tiers: dict[str, tuple[str, str | None]]) -> dict:
    """The mean run, level by level, from the scrapes of every endpoint (keys ``ray``, ``sui`` and the vLLM
    endpoints) before and after a step. ``tiers``: tier name -> (its vLLM endpoint's key, its ``model_name`` label,
    or None for all). Seconds; ``calls_per_run`` per tier."""
    out: dict = {}
    ray_b, ray_a = before.get("ray", {}), after.get("ray", {})
    proxy = hist_mean(ray_b, ray_a, "ray_serve_http_request_latency_ms", status_code="200")
    out["proxy_s"] = round(proxy["mean"] / 1000, 4) if proxy["mean"] is not None else None
    replica = hist_mean(ray_b, ray_a, "ray_serve_deployment_processing_latency_ms")
    out["replica_handler_s"] = round(replica["mean"] / 1000, 4) if replica["mean"] is not None else None
    sui_b, sui_a = before.get("sui", {}), after.get("sui", {})
    out["ingress_s"] = hist_mean(sui_b, sui_a, "sui_request_e2e_seconds")["mean"]
    run_calls = 0.0
    for tier, (key, model) in tiers.items():
        call = hist_mean(sui_b, sui_a, "sui_llm_call_seconds", tier=tier)
        row = {"calls_per_run": round(call["count"] / runs, 2) if runs else None, "call_s": call["mean"]}
        labels = {"model_name": model} if model else {}
        for phase, metric in VLLM_PHASES.items():
            row[f"vllm_{phase}_s"] = hist_mean(before.get(key, {}), after.get(key, {}), metric, **labels)["mean"]
        row["vllm_requests"] = hist_mean(before.get(key, {}), after.get(key, {}), VLLM_PHASES["e2e"],
                                         **labels)["count"]
        for name, metric in TOKEN_COUNTERS.items():  # tokens per run of this tier, from vLLM's own counters
            delta = total(after.get(key, {}), metric, **labels) - total(before.get(key, {}), metric, **labels)
            row[f"{name}_per_run"] = round(delta / runs, 1) if runs else None
        if call["mean"] is not None and row["vllm_e2e_s"] is not None:
            row["front_end_gap_s"] = round(call["mean"] - row["vllm_e2e_s"], 4)  # HTTP + API server, per call
        if row["calls_per_run"] and call["mean"] is not None:
            row["per_run_s"] = round(row["calls_per_run"] * call["mean"], 4)
            run_calls += row["per_run_s"]
        out[tier] = row
    tools = hist_mean(sui_b, sui_a, "sui_tool_latency_seconds")
    out["tools_per_run_s"] = round(tools["count"] * tools["mean"] / runs, 4) if runs and tools["mean"] else 0.0
    out["llm_per_run_s"] = round(run_calls, 4)
    if out["ingress_s"] is not None:  # admission queue, the run's own code, the answer's SSE
        out["ingress_gap_s"] = round(out["ingress_s"] - run_calls - out["tools_per_run_s"], 4)
    return out


# ------------------------------------------------------------------------------------------------ over time

class Sampler:
    """Once per ``interval_s`` in a thread: GPU utilisation and memory (NVML, when present) and each vLLM tier's
    running / waiting requests. ``rows`` is the time series; :meth:`summary` its means and maxima."""

    def __init__(self, vllm_metrics: dict[str, str | list[str]], interval_s: float = 1.0) -> None:
        self.urls, self.interval_s = vllm_metrics, interval_s
        self.rows: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._nvml = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = (pynvml, pynvml.nvmlDeviceGetHandleByIndex(0))
        except Exception:  # noqa: BLE001 - no NVIDIA driver or no pynvml: a CPU run
            self._nvml = None

    def _gpu(self) -> dict:
        if self._nvml is None:
            return {}
        nv, handle = self._nvml
        util = nv.nvmlDeviceGetUtilizationRates(handle)
        return {"gpu_util": util.gpu, "gpu_mem_util": util.memory}

    def _loop(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            row: dict = {"t": round(time.monotonic() - t0, 2), **self._gpu()}
            for tier, url in self.urls.items():
                s = scrape(url, timeout_s=self.interval_s)
                row[f"{tier}_running"] = total(s, "vllm:num_requests_running")
                row[f"{tier}_waiting"] = total(s, "vllm:num_requests_waiting")
            self.rows.append(row)
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - t0 - row["t"])))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def summary(self) -> dict:
        keys = sorted({k for r in self.rows for k in r if k != "t"})
        out = {"samples": len(self.rows)}
        for k in keys:
            vals = [r[k] for r in self.rows if r.get(k) is not None]
            if vals:
                out[k] = {"mean": round(sum(vals) / len(vals), 1), "max": max(vals)}
        return out


class StepProbe:
    """Everything above around one step: ``with StepProbe(...) as probe: run the step``; then
    ``probe.result(runs)``."""

    def __init__(self, endpoints: dict[str, str | list[str]], tiers_by_port: dict[str, str],
                 tiers: dict[str, tuple[str, str | None]], sample_interval_s: float = 1.0) -> None:
        self.endpoints, self.tiers_by_port, self.tiers = endpoints, tiers_by_port, tiers
        self.sampler = Sampler({key: endpoints[key] for key, _ in set(tiers.values()) if key in endpoints},
                               sample_interval_s)

    def __enter__(self) -> StepProbe:
        self.scrapes_before = {name: scrape(url) for name, url in self.endpoints.items()}
        self.cpu_before, self.t0 = cpu_times(self.tiers_by_port), time.monotonic()
        self.sampler.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sampler.__exit__()
        self.seconds = time.monotonic() - self.t0
        self.cpu_after = cpu_times(self.tiers_by_port)
        self.scrapes_after = {name: scrape(url) for name, url in self.endpoints.items()}

    def result(self, runs: int) -> dict:
        return {"seconds": round(self.seconds, 2), "runs": runs,
                "cpu": cpu_per_kind(self.cpu_before, self.cpu_after, self.seconds, runs),
                "timeline": decompose(self.scrapes_before, self.scrapes_after, runs, self.tiers),
                "engines": self.sampler.summary(), "series": self.sampler.rows}


def brief(probe: dict) -> str:
    """Two lines for a log: the timeline and the busiest process kinds."""
    tl = probe["timeline"]
    parts = [f"proxy {tl.get('proxy_s')}", f"ingress {tl.get('ingress_s')}", f"llm/run {tl.get('llm_per_run_s')}",
             f"gap {tl.get('ingress_gap_s')}"]
    for tier in ("domain", "agent"):
        if tier in tl:
            r = tl[tier]
            parts.append(f"{tier}: call {r.get('call_s')} = vllm {r.get('vllm_e2e_s')} (queue {r.get('vllm_queue_s')}"
                         f", prefill {r.get('vllm_prefill_s')}, decode {r.get('vllm_decode_s')}) "
                         f"+ front {r.get('front_end_gap_s')}")
    eng = probe["engines"]
    if "gpu_util" in eng:
        parts.append(f"GPU util mean {eng['gpu_util']['mean']}% max {eng['gpu_util']['max']}%")
    cpu = ", ".join(f"{r['kind']} {r['cores']} cores ({r['cpu_ms_per_run']} ms/run, max {r['busiest_core']})"
                    for r in probe["cpu"][:7])
    return "timeline: " + " | ".join(parts) + "\ncpu: " + cpu


def dump(path, probe: dict) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(probe, fh, indent=1)
