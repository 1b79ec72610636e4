"""Merging parallel `vllm bench serve` results and the two-client agreement check (benchmarks.gpu.vllm_bench)."""

from __future__ import annotations

import pytest

from benchmarks.gpu.vllm_bench import compare, merge


def _result(duration, ttfts, itls, out_tokens, errors=None):
    return {"duration": duration, "completed": sum(1 for e in (errors or [""] * len(ttfts)) if not e),
            "failed": sum(1 for e in (errors or []) if e), "total_output_tokens": out_tokens, "ttfts": ttfts,
            "itls": itls, "errors": errors or [""] * len(ttfts)}


def test_merge_uses_the_longest_client_and_all_requests():
    a = _result(10.0, [0.1, 0.2], [[0.01] * 3, [0.01] * 3], 8)
    b = _result(8.0, [0.3, 0.0], [[0.02] * 3, []], 4, errors=["", "HTTP 503"])
    m = merge([a, b], chat=False)
    assert m["completed"] == 3 and m["failed"] == 1 and m["req_s"] == pytest.approx(0.3)
    assert m["output_tok_s"] == pytest.approx(1.2) and m["ttft_ms"]["n"] == 3
    assert m["ttft_ms"]["p50"] == pytest.approx(200.0) and m["e2e_ms"]["max"] == pytest.approx(360.0)


def test_chat_ttft_is_the_first_content_not_the_role_chunk():
    # the pipeline sends its role-only chunk at once; the answer arrives one gap later
    m = merge([_result(1.0, [0.01], [[2.0, 0.01]], 5)], chat=True)
    assert m["first_chunk_ms"]["p50"] == pytest.approx(10.0) and m["ttft_ms"]["p50"] == pytest.approx(2010.0)


def test_compare_within_and_outside_tolerance():
    vllm = {"req_s": 10.0, "ttft_ms": {"p50": 100.0}}
    ok = compare(vllm, {"req_s": 10.5, "ttft_ms": {"p50": 95.0}})
    assert ok["agree"] and ok["metrics"]["req_s"]["diff"] == pytest.approx(0.05)
    bad = compare(vllm, {"req_s": 10.2, "ttft_ms": {"p50": 150.0}})
    assert not bad["agree"] and bad["metrics"]["req_s"]["agree"] and not bad["metrics"]["ttft_p50_ms"]["agree"]
    failed = compare({"req_s": 0, "ttft_ms": None}, {"req_s": 3.0, "ttft_ms": None})
    assert not failed["agree"]
