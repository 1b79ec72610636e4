"""Fixtures shared by the unit tests: one scripted OpenAI-compatible server per test module (the vLLM stand-in,
tests/scripted_openai.py), reset before each test that asks for `scripted`.

Under mutmut (it sets MUTANT_UNDER_TEST), hypothesis and schemathesis draw the same examples in every run: a
mutant's verdict must not depend on the draw, and mutmut stops the whole run when its clean-test run fails, as
a rare draw did on CI (2026-12-07). Elsewhere the draws stay random, to keep finding new cases."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.scripted_openai import ScriptedOpenAI

if "MUTANT_UNDER_TEST" in os.environ:
    settings.register_profile("mutmut", derandomize=True, database=None)
    settings.load_profile("mutmut")


@pytest.fixture(scope="module")
def server():
    with ScriptedOpenAI() as scripted:
        yield scripted


@pytest.fixture
def scripted(server):
    server.reset()
    return server
