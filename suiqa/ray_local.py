"""Environment for a Ray cluster that this project starts on one machine (the local stack, the benchmarks).

Loopback only, measured with `ss -ltnp` (tests/integration/test_ingress_guard_stack.py checks it): Ray 2.60
replaces ``--node-ip-address=127.0.0.1`` by the machine's routable address (``resolve_ip_for_localhost``), and its
gRPC servers (GCS, raylet, workers) then listen on every interface, the client server and dashboard agent on that
address, the metrics port on 0.0.0.0. ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is Ray's switch for a single-machine
cluster (its default on macOS/Windows): the node IP stays 127.0.0.1 and every Ray port binds to it. A multi-node
cluster (Kubernetes) does not use this environment.

Ray 2.60's token auth keeps one token per user (~/.ray), which concurrent local clusters (tests, benchmarks)
overwrite; it is off for these loopback-only clusters.

``RAY_worker_niceness=0``: Ray starts its workers (the Serve proxy and replicas) at nice 15 so that its own daemons
win the CPU. On one machine shared with vLLM (nice 0) that gives the ingress ~1/28 of vLLM's CPU share whenever both
want it (CFS weights 36 vs 1,024): the process that answers /health and refuses with 429 would be the first to
starve. Here the workers run at 0 and the CPU serving profiles start vLLM at nice 10 (``nice``). On 2 cores
(40 concurrent requests, cpu-tiny-shared) the effect of the niceness alone was within the run-to-run noise; the
figures are in tests/integration/test_ingress_guard_stack.py.
"""

import os
from collections.abc import Mapping

from suiqa.paths import REPO_ROOT

RAY_LOCAL_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0",
                 "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_worker_niceness": "0"}


def ray_head_env(defaults: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a ``ray start --head`` this project runs (its workers, the Serve proxy and replicas
    included, inherit it): ``defaults``, which the caller's environment may override, then the caller's environment,
    then :data:`RAY_LOCAL_ENV`; the project importable in the workers even where it is not pip-installed (a plain
    checkout, the GPU machine); one OpenMP thread unless set."""
    env = {**(defaults or {}), **os.environ, **RAY_LOCAL_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env
