"""Unit tests of the benchmark statistics, SSE measurement and report writing (no servers)."""

from __future__ import annotations

import json

import pytest

from benchmarks.openai_stream import StreamError, StreamMeter, parse_max_tokens, request_body
from benchmarks.report import write_comparison, write_report
from benchmarks.runner import BenchError, parse_duration, parse_users
from benchmarks.stats import (
    SLO,
    distribution,
    load_summary,
    new_summary,
    offline_pass,
    summarize_passes,
    summarize_step,
)


def _sse(obj) -> str:
    return "data: " + json.dumps(obj)


def test_stream_meter_chat_ignores_role_chunk_and_uses_usage():
    meter = StreamMeter(sent_at=10.0, start_wall=1000.0, max_tokens=4)
    meter.feed(_sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}), 10.05)
    meter.feed(_sse({"choices": [{"index": 0, "delta": {"content": "隋"}}]}), 10.2)
    meter.feed(_sse({"choices": [{"index": 0, "delta": {"content": ""}}]}), 10.3)   # empty text is still a token
    meter.feed(_sse({"choices": [{"index": 0, "delta": {"content": "朝"}}]}), 10.5)
    meter.feed(_sse({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 4}}), 10.5)
    meter.feed("data: [DONE]", 10.6)
    rec = meter.finish(10.6)
    assert rec.ok and rec.output_tokens == 4 and rec.prompt_tokens == 7 and rec.output_chunks == 3
    assert rec.ttft_ms == pytest.approx(200.0)
    assert rec.e2e_ms == pytest.approx(600.0)
    assert rec.tpot_ms == pytest.approx(400.0 / 3)
    assert rec.itl_ms == pytest.approx([100.0, 200.0])
    assert meter.text == "隋朝"


def test_stream_meter_completions_counts_chunks_without_usage():
    meter = StreamMeter(0.0, 0.0)
    for i, t in enumerate((0.1, 0.2, 0.3)):
        meter.feed(_sse({"choices": [{"index": 0, "text": str(i)}]}), t)
    rec = meter.finish(0.4)
    assert rec.ok and rec.output_tokens == 3 and rec.ttft_ms == pytest.approx(100.0)


def test_stream_meter_errors():
    meter = StreamMeter(0.0, 0.0)
    with pytest.raises(StreamError, match="invalid JSON"):
        meter.feed("data: {not json", 0.1)
    with pytest.raises(StreamError, match="boom"):
        StreamMeter(0.0, 0.0).feed(_sse({"error": {"message": "boom"}}), 0.1)
    empty = StreamMeter(0.0, 0.0)
    empty.feed("data: [DONE]", 0.1)
    rec = empty.finish(0.1)
    assert not rec.ok and "without any output" in rec.error


def test_request_body_and_lengths():
    body = request_body("chat", "m", "隋朝?", 16, ignore_eos=True)
    assert body["messages"][0]["content"] == "隋朝?" and body["ignore_eos"] and body["stream"]
    assert body["stream_options"] == {"include_usage": True}
    assert "ignore_eos" not in request_body("completions", "m", "p", 16, ignore_eos=False)
    assert parse_max_tokens("128") == (128, 128) and parse_max_tokens("64:256") == (64, 256)
    for bad in ("0", "10:5", "x", "1:2:3"):
        with pytest.raises(ValueError):
            parse_max_tokens(bad)
    with pytest.raises(ValueError):
        request_body("embeddings", "m", "p", 1, False)


def test_cli_value_parsers():
    assert parse_duration("60s") == 60 and parse_duration("2m") == 120 and parse_duration("5") == 5
    assert parse_users("1,8, 32") == [1, 8, 32]
    for bad in ("0s", "soon", "-1"):
        with pytest.raises(BenchError):
            parse_duration(bad)
    for bad in ("", "1,x", "0"):
        with pytest.raises(BenchError):
            parse_users(bad)


def _records():
    # 10 ok requests ending inside a 10 s window, one ending after it, one failure.
    recs = [{"start": 100.0 + i, "ok": True, "ttft_ms": 100.0 * (i + 1), "tpot_ms": 10.0, "e2e_ms": 500.0,
             "output_tokens": 20, "prompt_tokens": 5, "itl_ms": [10.0, 10.0]} for i in range(10)]
    recs.append({"start": 109.8, "ok": True, "ttft_ms": 50.0, "tpot_ms": 10.0, "e2e_ms": 900.0, "output_tokens": 20,
                 "itl_ms": []})
    recs.append({"start": 101.0, "ok": False, "error": "HTTP 500", "output_tokens": 0, "ttft_ms": None,
                 "tpot_ms": None, "e2e_ms": 3.0})
    return recs


def test_summarize_step_window_goodput_and_percentiles():
    step = summarize_step(_records(), users=4, t_start=100.0, duration_s=10.0, slo=SLO(ttft_ms=500, tpot_ms=50))
    assert step["requests"] == 12 and step["failures"] == 1
    assert step["completed_in_window"] == 10          # the one finishing at 110.7 s is outside
    assert step["req_s"] == pytest.approx(1.0) and step["output_tok_s"] == pytest.approx(20.0)
    assert step["goodput_req_s"] == pytest.approx(0.5)  # TTFT 100..500 ms meet the 500 ms SLO
    assert step["slo_attainment"] == pytest.approx(0.5)
    assert step["ttft_ms"]["n"] == 11 and step["ttft_ms"]["max"] == 1000.0
    assert step["itl_ms"]["p50"] == 10.0 and step["errors"] == {"HTTP 500": 1}


def test_distribution_and_passes():
    assert distribution([]) is None
    d = distribution(range(1, 101))
    assert d["p50"] == pytest.approx(50.5) and d["p99"] == pytest.approx(99.01) and d["n"] == 100
    passes = [offline_pass(i, t, 10, 100, 200) for i, t in enumerate((3.0, 1.0, 2.0), start=1)]
    agg = summarize_passes(passes)
    assert agg["best"]["pass"] == 2 and agg["median"]["pass"] == 3
    assert agg["best"]["output_tok_s"] == pytest.approx(200.0)
    even = summarize_passes(passes[:2])
    assert even["median"]["elapsed_s"] == pytest.approx(2.0)


def test_report_and_comparison_write_files(tmp_path):
    slo = SLO(500, 50)
    runs = []
    for name, scale in (("fast", 1.0), ("slow", 3.0)):
        s = new_summary(name, "online", {"url": "http://x"}, {"api": "chat"}, slo)
        for users in (1, 4):
            recs = [dict(r, ttft_ms=(r["ttft_ms"] or 0) * scale * users) for r in _records()]
            s["steps"].append(summarize_step(recs, users, 100.0, 10.0, slo))
        runs.append(s)
        report = write_report(s, tmp_path / name)
        assert report.is_file() and (tmp_path / name / "latency.png").stat().st_size > 1000
        assert load_summary(tmp_path / name)["name"] == name
    cmp = write_comparison(runs, tmp_path / "cmp")
    text = cmp.read_text(encoding="utf-8")
    assert "| fast | 1 |" in text and "| slow | 4 |" in text
    assert (tmp_path / "cmp" / "throughput.png").is_file()
    offline = new_summary("engine", "offline", {}, {})
    offline["steps"] = [offline_pass(1, 2.0, 10, 100, 200), offline_pass(2, 1.0, 10, 100, 200)]
    offline.update(summarize_passes(offline["steps"]))
    assert "| engine | best | 1.000 |" in write_report(offline, tmp_path / "off").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="not a benchmark summary"):
        (tmp_path / "bad.json").write_text("{}")
        load_summary(tmp_path / "bad.json")
