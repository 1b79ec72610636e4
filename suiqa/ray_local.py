"""Environment for a Ray cluster that this project starts on one machine (the local stack, the benchmarks).

The local head binds to 127.0.0.1 (``--node-ip-address=127.0.0.1``). Ray 2.60's token auth keeps one token per user
(~/.ray), which concurrent local clusters (tests, benchmarks) overwrite; it is off for these loopback clusters.
"""

RAY_LOCAL_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}
