"""react_tier/llm.py pinned where mutation testing found it unpinned: token accounting of streamed text (marks),
which failures are retried and which status each becomes, per-call timeouts, the request body, usage and hooks,
/tokenize truncation and its fallback. The HTTP side runs against the scripted OpenAI server."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from react_tier.answer_shaper import StreamedTurn
from react_tier.errors import UpstreamError
from react_tier.llm import Finish, LLMClient, _retryable, _upstream_fault, to_upstream_error
from react_tier.results import Usage
from react_tier.settings import LLMEndpointSettings
from tests.scripted_openai import Reply
from tests.support import free_port

REQ = httpx.Request("POST", "http://x/v1/chat/completions")


def _status(code: int) -> openai.APIStatusError:
    return openai.APIStatusError(f"HTTP {code}", response=httpx.Response(code, request=REQ), body=None)


def settings(url: str = "http://127.0.0.1:9/v1", **kw) -> LLMEndpointSettings:
    return LLMEndpointSettings(**{"base_url": url, "model": "agent", "timeout_s": 5, "connect_timeout_s": 2,
                                  "retry_backoff_s": 0.01, "max_retries": 1, "max_tokens": 64,
                                  "temperature": 0.3, **kw})


def test_completion_token_marks():
    done = StreamedTurn("甲乙丙丁戊", marks=[(2, 1), (4, 3), (5, 4)])
    assert [done.tokens_from(0), done.tokens_from(2), done.tokens_from(3), done.tokens_from(0, 2),
            done.tokens_from(0, 3), done.tokens_from(4, 5)] == [4, 3, 3, 1, 3, 1]
    assert [done.cut_at_tokens(0, cap) for cap in (0, 1, 2, 3, 4, 9)] == [0, 2, 2, 4, 5, 5]
    assert done.cut_at_tokens(2, 2) == 4 and done.cut_at_tokens(3, 1) == 3
    assert StreamedTurn("").tokens_from(0) == 0 and StreamedTurn("ab").cut_at_tokens(0, 5) == 0
    assert done.tokens_from(0, 9) == 4 and done.tokens_from(2, 9) == 3  # past the last mark: all its tokens


@pytest.mark.parametrize("exc, retried", [
    (openai.APITimeoutError(request=REQ), False), (openai.APIConnectionError(request=REQ), True),
    (_status(500), True), (_status(503), True), (_status(499), False), (_status(400), False),
    (ValueError("x"), False)])
def test_only_connection_errors_and_5xx_are_retried(exc, retried):
    assert _retryable(exc) is retried


@pytest.mark.parametrize("exc, status, message", [
    (openai.APITimeoutError(request=REQ), 504, "agent LLM timed out"),
    (TimeoutError(), 504, "agent LLM timed out"),
    (openai.APIConnectionError(request=REQ), 503, "agent LLM unreachable: Connection error."),
    (_status(503), 503, "agent LLM unavailable (HTTP 503)"),
    (_status(500), 502, "agent LLM gave a bad response: APIStatusError: HTTP 500"),
    (ValueError("odd"), 502, "agent LLM gave a bad response: ValueError: odd"),
])
def test_each_failure_becomes_an_upstream_error_with_its_status(exc, status, message):
    err = to_upstream_error("agent", exc)
    assert (err.status_code, str(err)) == (status, message)
    already = UpstreamError("kept", 504)
    assert to_upstream_error("agent", already) is already


def test_per_call_timeouts_follow_the_budget():
    client = LLMClient("agent", settings())
    cases = {None: (5, 2), 10.0: (5, 2), 3.0: (3.0, 2), 1.0: (1.0, 1.0), 0.0: (0.05, 0.05)}
    for budget, (read, connect) in cases.items():
        timeout = client._timeout(budget)
        assert (timeout.read, timeout.connect) == (read, connect), budget


def test_request_body():
    client = LLMClient("agent", settings(extra_body={"top_k": 5, "min_p": 0.1}))
    messages = [{"role": "user", "content": "q"}]
    assert client._request(messages, None, None) == {
        "model": "agent", "messages": messages, "temperature": 0.3, "max_tokens": 64, "top_k": 5, "min_p": 0.1}
    body = client._request(messages, ["\nObservation:"], 9, {"temperature": 0.9, "seed": 1,
                                                              "extra_body": {"top_k": 2}})
    assert body == {"model": "agent", "messages": messages, "temperature": 0.9, "max_tokens": 9, "seed": 1,
                    "stop": ["\nObservation:"], "top_k": 2, "min_p": 0.1}  # vLLM's extras sit in the JSON body
    assert "extra_body" not in body and "top_k" not in LLMClient("agent", settings())._request(messages, [], None)
    assert "stop" not in LLMClient("agent", settings())._request(messages, [], None)


async def test_complete_accounts_usage_and_reports_the_call(scripted):
    calls = []

    async def hook(*args):
        calls.append(args)

    scripted.script("agent", Reply("甲乙丙", prompt_tokens=7), Reply(status=500), Reply("丁", prompt_tokens=2))
    client = LLMClient("agent", settings(scripted.base_url), hook)
    usage = Usage()
    first = await client.complete([{"role": "user", "content": "q"}])
    second = await client.complete([{"role": "user", "content": "q"}])  # one 500, then retried
    await client.aclose()
    for call in (first, second):
        usage.add(call.usage)
    assert (first.text, first.prompt_tokens, first.completion_tokens, first.finish_reason) == ("甲乙丙", 7, 3, "stop")
    assert second.text == "丁"
    assert usage.model_dump() == {"prompt_tokens": 9, "completion_tokens": 4, "calls": 2}
    assert [(c[0], c[2], c[3]) for c in calls] == [
        ("agent", {"prompt_tokens": 7, "completion_tokens": 3}, None), ("agent", None, "InternalServerError"),
        ("agent", {"prompt_tokens": 2, "completion_tokens": 1}, None)]
    assert all(c[1] >= 0 for c in calls)


@pytest.mark.parametrize("continuous", [True, False])
async def test_stream_marks_where_the_tokens_end(scripted, continuous):
    scripted.script("agent", Reply("甲乙丙丁戊", prompt_tokens=4, chunk_chars=2))
    client = LLMClient("agent", settings(scripted.base_url, continuous_usage_stats=continuous))
    final = StreamedTurn()
    deltas = [d async for d in client.stream([{"role": "user", "content": "q"}])]
    await client.aclose()
    for delta in deltas:
        final.add(delta)
    assert [d.text for d in deltas[:-1]] == ["甲乙", "丙丁", "戊"] and isinstance(deltas[-1], Finish)
    assert final.text == "甲乙丙丁戊" and final.finish_reason == "stop"
    # the scripted server counts one token per character (vLLM's continuous stats); else one per chunk
    assert final.marks == ([(2, 2), (4, 4), (5, 5)] if continuous else [(2, 1), (4, 2), (5, 3)])
    assert final.completion_tokens == 5
    assert deltas[-1].usage.model_dump() == {"prompt_tokens": 4, "completion_tokens": 5, "calls": 1}
    body = scripted.requests_for("agent")[0]
    assert body["stream"] is True and body["stream_options"] == (
        {"include_usage": True, "continuous_usage_stats": True} if continuous else {"include_usage": True})


async def test_complete_sends_stop_cap_and_sampling_within_the_budget(scripted):
    scripted.script("agent", Reply("甲乙。丙"), Reply("", usage=False), Reply("迟", delay_s=3))
    client = LLMClient("agent", settings(scripted.base_url, max_retries=0))
    cut = await client.complete([{"role": "user", "content": "q"}], stop=["。"], max_tokens=7,
                                sampling={"seed": 3})
    empty = await client.complete([{"role": "user", "content": "q"}])
    with pytest.raises(openai.APITimeoutError):
        await client.complete([{"role": "user", "content": "q"}], budget_s=0.3)
    await client.aclose()
    assert cut.text == "甲乙" and (empty.text, empty.prompt_tokens, empty.completion_tokens) == ("", 0, 0)
    body = scripted.requests_for("agent")[0]
    assert (body["stop"], body["max_tokens"], body["seed"]) == (["。"], 7, 3)


async def test_truncate_to_tokens_asks_the_tiers_tokenizer(scripted):
    client = LLMClient("agent", settings(scripted.base_url))
    assert await client.truncate_to_tokens("隋文帝杨坚", 2) == ("隋文", 2)
    assert await client.truncate_to_tokens("隋文帝", 3) == ("隋文帝", 3)  # exactly the cap: no detokenize
    await client.aclose()
    first_two = [t for path, body in scripted.tokenizer_requests if path == "/detokenize" for t in body["tokens"]]
    assert scripted.tokenizer_requests == [
        ("/tokenize", {"model": "agent", "prompt": "隋文帝杨坚", "add_special_tokens": False}),
        ("/detokenize", {"model": "agent", "tokens": first_two}),
        ("/tokenize", {"model": "agent", "prompt": "隋文帝", "add_special_tokens": False})]
    assert len(first_two) == 2


async def test_truncation_is_in_the_tiers_tokens_not_characters(scripted):
    scripted.token_chars = 2  # a tokenizer whose tokens are two characters long
    client = LLMClient("agent", settings(scripted.base_url))
    assert await client.truncate_to_tokens("隋文帝杨坚", 2) == ("隋文帝杨", 2)
    assert await client.truncate_to_tokens("隋文帝", 2) == ("隋文帝", 2)
    await client.aclose()


async def test_truncate_to_tokens_with_the_tiers_tokenizer_and_without(scripted):
    client = LLMClient("agent", settings(scripted.base_url))
    assert await client.truncate_to_tokens("隋文帝", 5) == ("隋文帝", 3)
    assert await client.truncate_to_tokens("隋文帝杨坚", 2) == ("隋文", 2)
    down = LLMClient("agent", settings(f"http://127.0.0.1:{free_port()}/v1"))
    assert await down.truncate_to_tokens("隋文帝杨坚", 3, timeout_s=0.5) == ("隋文帝", 3)
    assert await down.truncate_to_tokens("隋", 3, timeout_s=0.5) == ("隋", 1)
    scripted.script("agent", "pong")  # readiness: the tier lists the model and answers a 1-token completion
    assert await client.ready() is True and await down.ready(timeout_s=0.5) is False
    await client.aclose()
    await down.aclose()


@pytest.mark.parametrize(("exc", "fault"), [
    (httpx.ReadError("reset"), True), (httpx.RemoteProtocolError("bad"), True), (ConnectionError(), True),
    (TimeoutError(), True), (_status(500), True), (_status(503), True), (_status(400), False),
    (_status(429), False), (ValueError("x"), False), (KeyError("httpx"), False)])
def test_what_counts_as_the_tiers_fault_for_the_breaker(exc, fault):
    assert _upstream_fault(exc) is fault


async def test_readiness_asks_for_one_deterministic_token_of_the_clients_model(scripted):
    client = LLMClient("agent", settings(scripted.base_url))
    scripted.script("agent", "pong")
    assert await client.ready() is True
    assert scripted.requests_for("agent")[-1] == {
        "model": "agent", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1, "temperature": 0}
    scripted.script("agent", Reply(hang=True))  # up but stuck: not ready within the timeout
    assert await client.ready(timeout_s=0.5) is False
    scripted.script("agent", Reply(status=500))
    assert await client.ready() is False
    other = LLMClient("agent", settings(scripted.base_url, model="not-served"))
    before = len(scripted.requests)
    assert await other.ready() is False and len(scripted.requests) == before  # no completion for a missing name
    await client.aclose()
    await other.aclose()


def _llm_calls(caplog) -> list[dict]:
    fields = ("tier", "call_id", "upstream_id", "status", "prompt_tokens", "completion_tokens", "error")
    return [{f: getattr(r, f) for f in fields} | {"level": r.levelname}
            for r in caplog.records if r.getMessage() == "llm_call"]


async def test_a_streamed_call_is_logged_and_reported_once(scripted, caplog):
    """Each streamed call: one ``llm_call`` line with the call id sent as X-Request-Id, vLLM's response id and the
    token counts, and one hook call; a caller that stops reading logs ``closed_by_caller`` with the counts so far."""
    from suiqa.logs import request_context

    calls = []

    async def hook(*args):
        calls.append(args)

    scripted.script("agent", Reply("甲乙丙丁", prompt_tokens=6, chunk_chars=2), Reply("戊己庚辛", chunk_chars=1))
    client = LLMClient("agent", settings(scripted.base_url), hook)
    caplog.set_level("INFO", logger="react_tier.llm")
    started = time.monotonic()
    with request_context("rid-7"):
        whole = [d async for d in client.stream([{"role": "user", "content": "q"}])]
        deltas = client.stream([{"role": "user", "content": "q"}])
        first = await anext(deltas)
        await deltas.aclose()  # the answer reached its cap: the caller stops reading
    wall_ms = (time.monotonic() - started) * 1000
    await client.aclose()
    # each line's latency is its own call's, from its start (both lines, the closed one too)
    assert all(0 < r.latency_ms <= wall_ms for r in caplog.records if r.getMessage() == "llm_call")
    assert [d.text for d in whole[:-1]] == ["甲乙", "丙丁"] and first.text == "戊"
    assert whole[-1] == Finish("stop", Usage(prompt_tokens=6, completion_tokens=4, calls=1))
    logged = _llm_calls(caplog)
    assert logged == [
        {"tier": "agent", "call_id": "rid-7.a1", "upstream_id": "chatcmpl-scripted", "status": 200,
         "prompt_tokens": 6, "completion_tokens": 4, "error": None, "level": "INFO"},
        {"tier": "agent", "call_id": "rid-7.a2", "upstream_id": "chatcmpl-scripted", "status": "closed_by_caller",
         "prompt_tokens": 11, "completion_tokens": 1, "error": None, "level": "INFO"}]
    assert [(c[0], c[2], c[3]) for c in calls] == [("agent", {"prompt_tokens": 6, "completion_tokens": 4}, None)]


class _BreakingStream:
    """An SSE stream as the openai client yields it (a dict per event) that breaks after ``chunks``."""

    def __init__(self, chunks: list[dict], error: BaseException) -> None:
        self.chunks, self.error, self.closed = chunks, error, False

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.closed = True

    def __aiter__(self):
        return self._events()

    async def _events(self):
        for chunk in self.chunks:
            yield chunk
        raise self.error


async def test_a_stream_that_breaks_midway_counts_against_its_replica_and_is_reported(caplog):
    """The replica's breaker counts the fault and the retry skips it; the hook and the log line name the error, the
    log line the replica; usage fields vLLM left out count 0, not None (the deltas carry them)."""
    from react_tier.llm import Completion

    calls = []

    async def hook(*args):
        calls.append(args)

    client = LLMClient("agent", settings(continuous_usage_stats=True), hook)
    caplog.set_level("INFO", logger="react_tier.llm")
    replica = "http://10.0.0.7:8001/v1"
    trace, call = {"replica": replica, "call_id": "c1"}, Completion("")
    stream = _BreakingStream([
        {"id": "x1", "usage": {"prompt_tokens": 3}, "choices": [{"delta": {"content": "甲"}}]},
        {"id": "x1", "usage": {"completion_tokens": 2}, "choices": [{"delta": {"content": "乙"}}]}],
        openai.APIConnectionError(request=REQ))
    got = []
    with pytest.raises(openai.APIConnectionError):
        async for delta in client._deltas(stream, call, trace, time.monotonic()):
            got.append(delta)
    await client.aclose()
    assert [(d.text, d.tokens) for d in got] == [("甲", 0), ("乙", 2)]
    assert (call.prompt_tokens, call.completion_tokens) == (0, 2) and stream.closed
    assert trace["failed"] == {replica} and client.breaker_for(replica).failures == 1
    assert [(c[0], c[2], c[3]) for c in calls] == [("agent", None, "APIConnectionError")]
    (line,) = [r for r in caplog.records if r.getMessage() == "llm_call"]
    assert (line.replica, line.levelname, line.upstream_id) == ("10.0.0.7:8001", "WARNING", "x1")
    assert line.error.startswith("APIConnectionError")


def test_a_calls_vllm_priority_without_a_clock_is_now_plus_its_budget():
    # no "deadline" in this name (`make mutation` deselects those): the wall clock, with a second of slack
    from react_tier.llm import deadline_priority

    before = time.time()
    got = deadline_priority(2.5, 60)
    assert int((before + 2.5) * 1000) <= got <= int((time.time() + 2.5) * 1000)


def test_a_calls_span_gets_its_ids_replica_and_token_counts():
    from react_tier.llm import Completion

    trace = {"call_id": "rid.a1", "upstream_id": "chatcmpl-9", "replica": "http://10.0.0.7:8001/v1"}
    assert LLMClient._span_result(trace, Completion("x", prompt_tokens=3, completion_tokens=4)) == {
        "sui.call_id": "rid.a1", "gen_ai.response.id": "chatcmpl-9", "sui.replica": "10.0.0.7:8001",
        "gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 4}
    assert LLMClient._span_result({"upstream_id": None}, Completion("")) == {
        "sui.call_id": "", "gen_ai.response.id": "", "sui.replica": "", "gen_ai.usage.input_tokens": 0,
        "gen_ai.usage.output_tokens": 0}


async def test_a_streamed_call_carries_the_runs_budget_in_its_priority_and_its_timeout(scripted):
    # no "deadline" in this name (`make mutation` deselects those); slack of seconds against differences of 50 s / 4 s
    scripted.script("agent", Reply("甲乙"), Reply("丙", delay_s=3))
    client = LLMClient("agent", settings(scripted.base_url, timeout_s=10, max_retries=0,
                                         extra_body={"priority": "deadline"}))
    before = time.time()
    [d async for d in client.stream([{"role": "user", "content": "q"}], budget_s=60)]
    (body,) = scripted.requests_for("agent")
    assert (before + 50) * 1000 < body["priority"] <= (time.time() + 60) * 1000  # the run's 60 s, not the call's 10
    started = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017,PT011 - the budget's read timeout, whatever the client calls it
        [d async for d in client.stream([{"role": "user", "content": "q"}], budget_s=0.5)]
    assert time.monotonic() - started < 2.5  # the budget's 0.5 s, not the call's 10 s (the reply comes after 3)
    await client.aclose()


@pytest.mark.parametrize("exc, status", [
    (None, 200), (_status(503), 503), (openai.APITimeoutError(request=REQ), "timeout"), (TimeoutError(), "timeout"),
    (openai.APIConnectionError(request=REQ), "connection_error"), (ValueError("x"), "ValueError")])
def test_each_attempts_status_in_the_log(exc, status):
    from react_tier.llm import _status_of

    assert _status_of(exc) == status


def test_the_log_keeps_300_characters_of_an_error(caplog):
    client = LLMClient("agent", settings())
    caplog.set_level("INFO", logger="react_tier.llm")
    client._log(0.1, None, ValueError("x" * 400), {"replica": "http://h:1/v1"})
    (line,) = [r for r in caplog.records if r.getMessage() == "llm_call"]
    assert line.error == ("ValueError: " + "x" * 400)[:300] and line.status == "ValueError"


def test_a_calls_timeouts_whole_read_and_connect():
    client = LLMClient("agent", settings(timeout_s=20, connect_timeout_s=2, stream_idle_timeout_s=5))
    whole = client._timeout(None)
    assert (whole.read, whole.connect, whole.pool, whole.write) == (20, 2, 20, 20)
    streamed = client._timeout(8.0, stream=True)
    assert (streamed.read, streamed.connect, streamed.pool) == (5, 2, 8.0)


def test_retries_back_off_from_the_settings_base_up_to_eight_times_it():
    wait = LLMClient("agent", settings(retry_backoff_s=0.5))._retrying().wait
    assert (wait.multiplier, wait.max) == (0.5, 4.0)
    assert LLMClient("agent", settings(retry_backoff_s=0.0001))._retrying().wait.max == 0.01


def test_a_replicas_breaker_is_named_after_it_and_a_single_endpoints_after_the_tier():
    single = LLMClient("agent", settings("http://10.0.0.1:8001/v1"))
    assert single.breaker_for("http://10.0.0.1:8001/v1").tier == "agent"
    urls = ["http://10.0.0.1:8001/v1", "http://10.0.0.2:8001/v1"]
    several = LLMClient("agent", settings(urls[0], replicas=urls))
    assert several.breaker_for(urls[1]).tier == "agent replica 10.0.0.2:8001"
    dns = LLMClient("agent", settings("http://agent.svc:8001/v1", resolve_dns=True))
    assert dns.breaker_for("http://10.0.0.3:8001/v1").tier == "agent replica 10.0.0.3:8001"


def test_the_call_span_names_the_tier_model_and_mode():
    from react_tier.hooks import HookSet
    from tests.unit.react_tier.helpers import Spans

    spans = Spans()
    client = LLMClient("agent", settings(), hooks=HookSet([spans]))
    with client._span(True):
        pass
    assert spans.opened == [("llm.call", {"sui.tier": "agent", "gen_ai.request.model": "agent", "sui.stream": True})]


def test_a_call_without_a_run_budget_is_prioritised_by_its_own_timeout():
    # no "deadline" in this name (`make mutation` deselects those): the wall clock with a second of slack
    client = LLMClient("agent", settings(timeout_s=30, extra_body={"priority": "deadline"}))
    before = time.time()
    body = client._request([{"role": "user", "content": "q"}], None, None, None, None)
    assert (before + 29) * 1000 < body["priority"] <= (time.time() + 30) * 1000
