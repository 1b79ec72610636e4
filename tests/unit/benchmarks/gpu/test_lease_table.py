"""The lease table reads each pass's own probe file and gives best/median over the passes of one load."""

import json

from benchmarks.gpu.lease_table import markdown, passes, probe_name, raw_name, rows


def _variant(tmp_path, name, steps):
    d = tmp_path / name
    d.mkdir()
    (d / "summary.json").write_text(json.dumps({"steps": steps}))
    for s in steps:
        gpu = 50.0 + s.get("pass", 1)  # tells the passes' probes apart
        (d / probe_name(s["users"], s.get("pass", 1))).write_text(json.dumps(
            {"timeline": {}, "engines": {"gpu_util": {"mean": gpu}}, "cpu": []}))


def _step(users, run_pass, req_s, p50_ms, errors=None):
    return {"users": users, "pass": run_pass, "req_s": req_s, "requests": 100, "e2e_ms": {"p50": p50_ms, "p99": 9000},
            "errors": errors or {}}


def test_probe_names_keep_the_first_pass_unsuffixed():
    assert probe_name(128) == "probe-u128.json"
    assert probe_name(128, 1) == "probe-u128.json"
    assert probe_name(128, 3) == "probe-u128-p3.json"
    assert (raw_name(), raw_name(1), raw_name(3)) == ("raw", "raw", "raw-p3")  # each pass its own records


def test_each_pass_reads_its_own_probe_and_little_is_clients_over_p50(tmp_path):
    _variant(tmp_path, "base", [_step(128, 1, 20.0, 5000), _step(128, 2, 24.0, 4000),
                                _step(128, 3, 22.0, 6400, {"HTTP 429": 3})])
    table = rows(tmp_path)
    assert [r["gpu_util"] for r in table] == [51.0, 52.0, 53.0]
    assert [r["runs_s_little"] for r in table] == [25.6, 32.0, 20.0]
    assert table[2]["refused"] == 3
    (summary,) = passes(table)
    assert summary == {"variant": "base", "clients": 128, "passes": 3, "window_best": 24.0, "window_median": 22.0,
                       "little_best": 32.0, "little_median": 25.6, "refused": 3, "requests": 300}
    text = markdown(table)
    assert "| base | 128 | 3 | 24 / 22 | 32 / 25.6 | 3 / 300 |" in text


def test_a_load_run_once_has_no_passes_row(tmp_path):
    _variant(tmp_path, "two", [{k: v for k, v in _step(256, 1, 30.0, 8000).items() if k != "pass"}])
    table = rows(tmp_path)
    assert table[0]["pass"] == 1 and table[0]["runs_s_little"] == 32.0
    assert passes(table) == []
    assert "passes |" not in markdown(table)
