"""A stdlib sampling profiler for the Ray Serve tier (py-spy is not in the GPU kit): put this folder first on the
PYTHONPATH of the Ray head (`benchmarks.gpu.pipeline_bench` does), and every Ray worker process imports it at start.

Inactive unless ``SUIQA_SAMPLE_DIR`` is set and the process is a Ray worker, or a vLLM server or one of its spawned
children (API servers, engine core: issue 24's per-step CPU; ``throughput.sh llm-up`` sets the variable for them). A
daemon thread then samples every thread's Python stack (``sys._current_frames``) every 10 ms while the file
``$SUIQA_SAMPLE_DIR/on`` exists, and when the file is removed writes ``$SUIQA_SAMPLE_DIR/<pid>.json``: the process
title (``ray::ServeReplica:...``, ``ray::ProxyActor``), and per thread its CPU use over the window (from
/proc/self/task/<tid>/stat: a thread blocked inside C code, like Ray's core-worker poll loops, shows the same Python
frame whether it works or waits, so the kernel's count is the truth), the samples and the busy ones (innermost frame
not a wait: select/epoll, lock or queue waits, sleep), the busiest innermost functions (self time) and functions on
the stack (inclusive time). A sample costs ~0.1 ms of GIL time, ~1% of a core at 100 Hz.
"""

import os
import sys


def _start() -> None:
    import json
    import threading
    import time
    from collections import Counter
    from pathlib import Path

    out = Path(os.environ["SUIQA_SAMPLE_DIR"])
    trigger = out / "on"
    idle_leaf = {"select", "poll", "wait", "_wait_for_tstate_lock", "sleep", "acquire", "get", "accept", "recv",
                 "recv_into", "readline", "_worker", "run_forever", "wait_for", "_recv", "epoll", "park"}

    def title() -> str:
        try:
            return Path("/proc/self/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
        except OSError:
            return " ".join(sys.argv)[:200]

    tick = os.sysconf("SC_CLK_TCK")

    def cpu_ticks() -> dict:
        ticks = {}
        for task in Path("/proc/self/task").iterdir():
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                ticks[int(task.name)] = int(fields[11]) + int(fields[12])  # utime + stime
            except (OSError, ValueError, IndexError):
                pass
        return ticks

    def loop() -> None:
        me = threading.get_ident()
        threads: dict = {}
        start_ticks, started = {}, 0.0
        while True:
            if not trigger.exists():
                if threads:
                    elapsed = max(time.monotonic() - started, 1e-3)
                    end_ticks = cpu_ticks()
                    names = {t.ident: (t.name, t.native_id) for t in threading.enumerate()}
                    cpu_by_tid = {tid: (end_ticks[tid] - start_ticks.get(tid, 0)) / tick / elapsed
                                  for tid in end_ticks}
                    report = {"pid": os.getpid(), "ppid": os.getppid(), "title": title(), "interval_ms": 10,
                              "window_s": round(elapsed, 2),
                              "process_cpu_pct": round(100 * sum(cpu_by_tid.values()), 1),
                              "native_threads_cpu_pct": sorted((round(100 * v, 1) for v in cpu_by_tid.values()),
                                                               reverse=True)[:12],
                              "threads": [
                        {"name": names.get(tid, (str(tid), None))[0],
                         "cpu_pct": round(100 * cpu_by_tid.get(names.get(tid, ("", None))[1], 0.0), 1),
                         "samples": d["n"], "busy": d["busy"],
                         "self": d["self"].most_common(25), "inclusive": d["incl"].most_common(40)}
                        for tid, d in threads.items()]}
                    report["threads"].sort(key=lambda t: -t["cpu_pct"])
                    (out / f"{os.getpid()}.json").write_text(json.dumps(report, indent=1))
                    threads = {}
                time.sleep(0.2)
                continue
            if not threads:
                start_ticks, started = cpu_ticks(), time.monotonic()
            for tid, frame in sys._current_frames().items():
                if tid == me:
                    continue
                d = threads.setdefault(tid, {"n": 0, "busy": 0, "self": Counter(), "incl": Counter()})
                d["n"] += 1
                code = frame.f_code
                if code.co_name in idle_leaf:
                    continue
                d["busy"] += 1
                d["self"][f"{code.co_name} {os.path.basename(code.co_filename)}:{frame.f_lineno}"] += 1
                seen = set()
                f = frame
                depth = 0
                while f is not None and depth < 60:
                    key = f"{f.f_code.co_name} {os.path.basename(f.f_code.co_filename)}"
                    if key not in seen:
                        seen.add(key)
                        d["incl"][key] += 1
                    f, depth = f.f_back, depth + 1
            time.sleep(0.01)

    threading.Thread(target=loop, name="suiqa-sampler", daemon=True).start()


try:
    if os.environ.get("SUIQA_SAMPLE_DIR"):
        with open("/proc/self/cmdline", "rb") as _fh:
            _cmd = _fh.read()
        if any(mark in _cmd for mark in (b"default_worker", b"ray::", b"vllm", b"spawn_main")):
            _start()
except Exception:  # noqa: BLE001, S110 - a profiler must never break the process it watches
    pass
