"""benchmarks/stream_reader.py: the scripted vLLM stream is what vLLM sends, and both readers see every token."""

from __future__ import annotations

import json

from benchmarks.stream_reader import measure, sse_events


def test_events_follow_vllms_stream_interval():
    events = sse_events(10, 4)
    assert events[-1] == b"data: [DONE]\n\n"
    chunks = [json.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    content = [c["choices"][0]["delta"]["content"] for c in chunks if c["choices"]]
    assert [len(t) for t in content] == [0, 1, 4, 4, 1, 0]  # role, first token at once, then 4 at a time, finish
    assert [c["usage"]["completion_tokens"] for c in chunks] == [0, 1, 5, 9, 10, 10, 10]
    assert chunks[-1]["choices"] == [] and chunks[-2]["choices"][0]["finish_reason"] == "length"


def test_both_readers_read_every_token():
    rows = measure(tokens=9, intervals=[1, 4], turns=2, passes=1)  # _pass asserts the text length per reader
    assert {(r["reader"], r["stream_interval"], r["chunks"]) for r in rows} == {
        ("typed", 1, 12), ("dicts", 1, 12), ("typed", 4, 6), ("dicts", 4, 6)}
    assert all(r["cpu_ms_per_turn_median"] > 0 for r in rows)
