"""The step-load report: answers, refusals and failures per second by request start, and the agent deployment's
replica processes per sample (other processes and the ingress-less Ray actors are not replicas)."""

import csv

from benchmarks.gpu.step_load import binned, markdown, timeline


def _csv(path, rows):
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_per_second_counts_and_replicas_over_time(tmp_path):
    _csv(tmp_path / "records.csv", [
        {"t": 0.1, "status": 200, "error": ""}, {"t": 0.5, "status": 429, "error": "HTTP 429"},
        {"t": 1.2, "status": 200, "error": "stream cut"}, {"t": 1.9, "status": 0, "error": "ReadTimeout"},
        {"t": 3.0, "status": 200, "error": ""}])
    rep, other = "ray::ServeReplica:sui-react:SuiReAct", "ray::ServeController"
    _csv(tmp_path / "rss.csv", [
        {"t": -1.9, "pid": 1, "name": rep}, {"t": -1.9, "pid": 9, "name": other},
        {"t": 0.0, "pid": 1, "name": rep}, {"t": 2.1, "pid": 1, "name": rep}, {"t": 2.1, "pid": 2, "name": rep},
        {"t": 2.1, "pid": 9, "name": other}])
    rows = timeline(tmp_path)
    assert rows == [
        {"t": 0, "started": 2, "ok": 1, "refused": 1, "failed": 0, "replicas": 1},
        {"t": 1, "started": 2, "ok": 0, "refused": 0, "failed": 2, "replicas": 1},  # a 200 cut short failed
        {"t": 2, "started": 0, "ok": 0, "refused": 0, "failed": 0, "replicas": 2},
        {"t": 3, "started": 1, "ok": 1, "refused": 0, "failed": 0, "replicas": 2}]  # the last sample carries on
    bins = binned(rows, 2)
    assert bins == [{"t": 0, "started": 4, "ok": 1, "refused": 1, "failed": 2, "replicas": 1},
                    {"t": 2, "started": 1, "ok": 1, "refused": 0, "failed": 0, "replicas": 2}]
    assert "| 2 | 1 | 1 | 0 | 0 | 2 |" in markdown("x", bins, 2)


def test_without_process_samples_replicas_are_unknown(tmp_path):
    _csv(tmp_path / "records.csv", [{"t": 0.2, "status": 429, "error": "HTTP 429"}])
    assert timeline(tmp_path) == [{"t": 0, "started": 1, "ok": 0, "refused": 1, "failed": 0, "replicas": None}]
    assert "| 0 | 1 | 0 | 1 | 0 | – |" in markdown("x", binned(timeline(tmp_path), 5), 5)
