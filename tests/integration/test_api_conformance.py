"""OpenAI conformance of the pipeline API, with the official `openai` client against the running stack
(cpu-tiny-shared: tiny random models, so answers are noise; the tests check the contract, not the prose).
Each honoured parameter changes what comes back; each refused one is a 400 that names it, streamed or not."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import OpenAI

pytestmark = pytest.mark.integration
QUESTION = "隋文帝杨坚是哪一年建立隋朝的？"
USER = [{"role": "user", "content": QUESTION}]


@pytest.fixture(scope="module")
def client(stack) -> OpenAI:
    urls, _ = stack
    return OpenAI(base_url=urls["api"], api_key="unused", max_retries=0, timeout=180)


@pytest.fixture(scope="module")
def model(stack) -> str:
    return stack[0]["model"]


def _tokens(stack, text: str) -> int:
    """The answer's length in the agent model's tokens, counted by the vLLM tier itself."""
    urls, _ = stack
    root = urls["vllm_domain"].removesuffix("/v1")
    served = httpx.get(f"{urls['vllm_domain']}/models", timeout=10).json()["data"][0]["id"]
    resp = httpx.post(f"{root}/tokenize", json={"model": served, "prompt": text, "add_special_tokens": False},
                      timeout=10)
    return resp.raise_for_status().json()["count"]


def test_system_message_and_user(client, model):
    resp = client.chat.completions.create(model=model, messages=[
        {"role": "system", "content": "你是隋史专家，请简洁回答。"}, *USER])
    assert resp.choices[0].message.content and resp.choices[0].finish_reason in ("stop", "length")
    assert resp.model_extra["sui"]["steps"]


def test_developer_message_and_multi_turn(client, model):
    resp = client.chat.completions.create(model=model, messages=[
        {"role": "developer", "content": "只用中文回答。"}, {"role": "user", "content": "隋朝是谁建立的？"},
        {"role": "assistant", "content": "杨坚。"}, {"role": "user", "content": "他在哪一年称帝？"}])
    assert resp.choices[0].message.content


@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_caps_the_answer(stack, client, model, stream):
    cap = 8
    if stream:
        chunks = list(client.chat.completions.create(model=model, messages=USER, max_tokens=cap, stream=True,
                                                     stream_options={"include_usage": True}))
        answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        usage = chunks[-1].usage
    else:
        resp = client.chat.completions.create(model=model, messages=USER, max_completion_tokens=cap)
        answer, finish, usage = resp.choices[0].message.content, [resp.choices[0].finish_reason], resp.usage
    assert finish == ["length"], (answer, finish)
    assert 0 < usage.completion_tokens <= cap
    assert answer and _tokens(stack, answer) <= cap + 1  # re-tokenised text may merge one token differently


def test_without_a_cap_the_answer_is_longer(stack, client, model):
    resp = client.chat.completions.create(model=model, messages=USER, max_tokens=200)
    capped = client.chat.completions.create(model=model, messages=USER, max_tokens=8)
    assert resp.usage.completion_tokens > capped.usage.completion_tokens


def test_stop_strings_cut_the_answer(client, model):
    plain = client.chat.completions.create(model=model, messages=USER, seed=1, temperature=0)
    text = plain.choices[0].message.content
    assert len(text) > 20
    stop = text[10:12]  # a string the answer contains
    resp = client.chat.completions.create(model=model, messages=USER, seed=1, temperature=0, stop=[stop])
    cut = resp.choices[0].message.content
    assert stop not in cut and len(cut) < len(text) and resp.choices[0].finish_reason == "stop"


def test_temperature_and_seed_are_accepted_and_reproducible(client, model):
    answers = {client.chat.completions.create(model=model, messages=USER, temperature=1.0, top_p=0.9, seed=42,
                                              max_tokens=32).choices[0].message.content for _ in range(2)}
    assert len(answers) == 1


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kwargs, param", [
    ({"n": 2}, "n"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"logprobs": True}, "logprobs"),
    ({"logit_bias": {"1": 2}}, "logit_bias"),
    ({"extra_body": {"guided_json": {}}}, "guided_json"),
])
def test_refused_parameters_are_400_naming_them(client, model, kwargs, param, stream):
    with pytest.raises(openai.BadRequestError) as err:
        result = client.chat.completions.create(model=model, messages=USER, stream=stream, **kwargs)
        if stream:
            list(result)
    assert err.value.status_code == 400 and err.value.body["param"] == param


def test_include_usage_only_when_asked(client, model):
    plain = list(client.chat.completions.create(model=model, messages=USER, stream=True, max_tokens=16))
    assert all(c.usage is None for c in plain)
    with_usage = list(client.chat.completions.create(model=model, messages=USER, stream=True, max_tokens=16,
                                                     stream_options={"include_usage": True}))
    assert with_usage[-1].choices == [] and with_usage[-1].usage.total_tokens > 0


def test_models_card_says_tiny(stack):
    card = httpx.get(f"{stack[0]['api']}/models", timeout=10).json()["data"][0]
    assert card["sui"] == {"profile": "cpu-tiny-shared", "tiny_models": True}


def test_one_request_id_header(stack):
    resp = httpx.post(f"{stack[0]['api']}/chat/completions", timeout=60, headers={"X-Request-Id": "conf-1"},
                      json={"model": stack[0]["model"], "messages": USER, "max_tokens": 4})
    assert resp.headers.get_list("x-request-id") == ["conf-1"] and resp.json()["sui"]["request_id"] == "conf-1"
    resp = httpx.get(f"{stack[0]['api']}/models", timeout=10)
    assert len(resp.headers.get_list("x-request-id")) == 1


def test_a_malformed_request_id_is_refused_and_never_echoed(stack):
    """Issue #25, item 4, on the wire: Ray's proxy echoed the client's X-Request-Id on the replica's 400,
    and the front door's /health took any value; the door refuses it first, with an id of its own."""
    root = stack[0]["api"].removesuffix("/v1")
    for method, url in (("GET", f"{root}/health"), ("POST", f"{stack[0]['api']}/chat/completions")):
        body = {"model": stack[0]["model"], "messages": USER} if method == "POST" else None
        resp = httpx.request(method, url, timeout=30, headers={"X-Request-Id": "bad id!"}, json=body)
        (echoed,) = resp.headers.get_list("x-request-id")
        assert resp.status_code == 400 and echoed != "bad id!" and len(echoed) == 32
        assert resp.json()["error"]["param"] == "X-Request-Id"
    ok = httpx.get(f"{root}/health", timeout=30, headers={"X-Request-Id": "ok-1"})
    assert ok.headers["x-request-id"] == "ok-1"
