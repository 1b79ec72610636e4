"""Fixtures shared by the unit tests: one scripted OpenAI-compatible server per test module (the vLLM stand-in,
tests/scripted_openai.py), reset before each test that asks for `scripted`."""

from __future__ import annotations

import pytest

from tests.scripted_openai import ScriptedOpenAI


@pytest.fixture(scope="module")
def server():
    with ScriptedOpenAI() as scripted:
        yield scripted


@pytest.fixture
def scripted(server):
    server.reset()
    return server
