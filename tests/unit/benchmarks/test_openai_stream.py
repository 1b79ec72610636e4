"""benchmarks/openai_stream.py: how long the load clients (the Locust user, the soak runner) wait after a refusal."""

from __future__ import annotations

import pytest

from benchmarks.openai_stream import RETRY_AFTER_CAP_S, retry_after_s


@pytest.mark.parametrize(("value", "expected"), [("2", 2.0), ("0.5", 0.5), ("0", 0.0), (" 3 ", 3.0),
                                                 ("120", RETRY_AFTER_CAP_S), ("60", 60.0)])
def test_seconds_are_read_and_capped_as_the_openai_sdk_caps_them(value, expected):
    assert retry_after_s(value) == expected
    assert RETRY_AFTER_CAP_S == 60.0


@pytest.mark.parametrize("value", [None, "", "soon", "Wed, 21 Oct 2026 07:28:00 GMT", "-1", "nan"])
def test_a_missing_or_unreadable_header_gives_the_default(value):
    assert retry_after_s(value) is None
    assert retry_after_s(value, default=1.0) == 1.0
