"""suiqa.logs.read_json_lines: JSON objects only, from the start or from a byte offset (what was appended since)."""

from __future__ import annotations

from suiqa.logs import read_json_lines


def test_reads_objects_from_the_start_or_from_an_offset(tmp_path):
    log = tmp_path / "pipeline.jsonl"
    log.write_text('{"event": "a", "text": "隋"}\nnot json\n[1, 2]\n', encoding="utf-8")
    size = log.stat().st_size
    with log.open("a", encoding="utf-8") as fh:
        fh.write('{"event": "b"}\n')
    assert read_json_lines(log) == [{"event": "a", "text": "隋"}, {"event": "b"}]
    assert read_json_lines(log, offset=size) == [{"event": "b"}]
