"""OpenAIServingChat (deployments/serving_chat.py) pinned where mutation testing found it unpinned: what it records
in the API metrics (status per response, e2e and TTFT per stream mode), the whole-request time limit on both paths
(a 504 before the response, an in-band 504 error mid-stream), the exact SSE framing, and the 400s of prepare().

(No test name here says "deadline": `make mutation` deselects those wall-clock tests of the ReAct loop; these
ones use margins of seconds.)"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from deployments.config import ApiSettings
from deployments.errors import ApiError
from deployments.metrics import PipelineMetrics
from deployments.protocol import ChatCompletionRequest
from deployments.serving_chat import OpenAIServingChat
from react_tier import AgentInputError, UpstreamError
from tests.unit.deployments.helpers import ContractAgent


def Recorder() -> PipelineMetrics:
    """The real pipeline metrics on a private registry (what the replica uses, minus the multiprocess dir)."""
    return PipelineMetrics()


def _count(metrics: PipelineMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


class SlowAgent(ContractAgent):
    """Waits ``delay_s`` before each event."""

    def __init__(self, delay_s: float, **kw) -> None:
        super().__init__(**kw)
        self.delay_s = delay_s

    async def stream(self, request):
        async for event in super().stream(request):
            await asyncio.sleep(self.delay_s)
            yield event


def _request(**kw) -> ChatCompletionRequest:
    return ChatCompletionRequest(**{"model": "sui-react", "messages": [{"role": "user", "content": "隋朝"}], **kw})


async def _lines(chat: OpenAIServingChat, **kw) -> list[str]:
    return [line async for line in await chat.stream(_request(stream=True, **kw), "rid")]


async def test_metrics_of_a_json_response():
    metrics = Recorder()
    await OpenAIServingChat(ApiSettings(), ContractAgent(), metrics).create(_request(), "rid")
    assert _count(metrics, "sui_request_e2e_seconds_count", stream="false") == 1
    assert _count(metrics, "sui_request_ttft_seconds_count", stream="false") == 1
    assert _count(metrics, "sui_request_e2e_seconds_count", stream="true") == 0


async def test_metrics_of_a_stream_and_of_a_failed_stream():
    metrics = Recorder()
    await _lines(OpenAIServingChat(ApiSettings(), ContractAgent(), metrics))
    assert _count(metrics, "sui_request_e2e_seconds_count", stream="true") == 1
    metrics = Recorder()
    agent = ContractAgent(fail=UpstreamError("agent LLM unreachable", status_code=503), fail_after=1)
    await _lines(OpenAIServingChat(ApiSettings(), agent, metrics))
    assert _count(metrics, "sui_request_e2e_seconds_count", stream="true") == 0  # latency of successes only


async def test_the_json_path_has_a_whole_request_time_limit():
    chat = OpenAIServingChat(ApiSettings.load(request_timeout_s=0.2), SlowAgent(30.0))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(chat.create(_request(), "rid"), 10)
    assert time.monotonic() - started < 5


async def test_a_stream_past_its_time_limit_ends_with_an_in_band_504():
    chat = OpenAIServingChat(ApiSettings.load(request_timeout_s=0.3), SlowAgent(30.0))
    lines = await asyncio.wait_for(_lines(chat), 10)
    assert lines[-1] == "data: [DONE]\n\n"
    error = json.loads(lines[-2][len("data: "):])["error"]
    assert (error["code"], error["type"]) == (504, "upstream_timeout")
    assert error["message"] == "the request exceeded the pipeline's time limit"


async def test_a_stream_within_its_time_limit_completes():
    metrics = Recorder()
    lines = await _lines(OpenAIServingChat(ApiSettings.load(request_timeout_s=2.5), SlowAgent(0.3), metrics))
    assert lines[-1] == "data: [DONE]\n\n" and not any('"error"' in line for line in lines)
    e2e = _count(metrics, "sui_request_e2e_seconds_sum", stream="true")
    ttft = _count(metrics, "sui_request_ttft_seconds_sum", stream="true")
    assert 0.6 <= ttft <= e2e - 0.5  # the first answer delta comes after two events, the end three events later


async def test_an_error_mid_stream_keeps_its_text_readable():
    agent = ContractAgent(fail=UpstreamError("上游失败", status_code=502), fail_after=1)
    lines = await _lines(OpenAIServingChat(ApiSettings(), agent))
    assert lines[-2] == 'data: {"error": {"message": "上游失败", "type": "upstream_error", "param": null, ' \
                        '"code": 502}}\n\n'


async def test_the_usage_chunk_has_no_empty_fields():
    lines = await _lines(OpenAIServingChat(ApiSettings(), ContractAgent()), stream_options={"include_usage": True})
    usage = json.loads(lines[-2][len("data: "):])
    assert set(usage) == {"id", "object", "created", "model", "choices", "usage"} and usage["choices"] == []


def test_prepare_turns_every_refusal_into_a_400():
    chat = OpenAIServingChat(ApiSettings(), ContractAgent())
    with pytest.raises(ApiError) as info:
        chat.prepare(_request(), "r" * 65)  # longer than AgentRequest allows
    assert (info.value.status, info.value.param) == (400, "request_id")
    assert info.value.message == "String should have at most 64 characters"

    class Refusing(ContractAgent):
        def check(self, request):
            raise AgentInputError("no")

    with pytest.raises(ApiError) as info:
        OpenAIServingChat(ApiSettings(), Refusing()).prepare(_request(), "rid")
    assert (info.value.status, info.value.message, info.value.param) == (400, "no", "messages")
    assert str(ApiError(418, "teapot")) == "teapot"


def test_an_unexpected_error_is_logged_with_its_traceback(caplog):
    from deployments.errors import classify_exception

    error = RuntimeError("boom")
    with caplog.at_level(logging.ERROR, logger="deployments.serving_chat"):
        classify_exception(error)
    (record,) = caplog.records
    assert record.getMessage() == "unexpected error in the pipeline" and record.exc_info[1] is error


async def test_sse_framing_is_exact():
    lines = await _lines(OpenAIServingChat(ApiSettings(), ContractAgent()), sui_events=True)
    assert all(line.endswith("\n\n") for line in lines)
    first = json.loads(lines[0].removeprefix("data: "))
    assert first["id"] == "chatcmpl-rid" and first["object"] == "chat.completion.chunk"
    assert first["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}}]
    events = [line for line in lines if line.startswith("event: ")]
    assert [line.split("\n")[0] for line in events] == ["event: sui.step"] * 2
    contents = [json.loads(line[6:])["choices"][0]["delta"].get("content") for line in lines
                if line.startswith("data: {") and json.loads(line[6:])["choices"]]
    assert contents == ["", "隋", "文帝", None]
    assert lines[-1] == "data: [DONE]\n\n" and lines.count("data: [DONE]\n\n") == 1


async def test_wrong_model_is_refused_before_the_stream_starts():
    chat = OpenAIServingChat(ApiSettings(), ContractAgent())
    with pytest.raises(ApiError) as info:
        await chat.stream(_request(model="gpt-4", stream=True), "rid")
    assert (info.value.status, info.value.param) == (404, "model")
    assert info.value.message == "model 'gpt-4' does not exist; this API serves 'sui-react'"


class HeldStream:
    """The agent's event stream as a plain async iterator: one answer delta, then the run goes on until
    closed. Only ``aclose()`` closes it (an async generator would also be closed by the cancellation
    passing through it)."""

    def __init__(self) -> None:
        self.closed, self.sent, self.going = False, False, asyncio.Event()

    def __aiter__(self):
        return self

    async def __anext__(self):
        if not self.sent:
            from react_tier.results import AnswerDelta

            self.sent = True
            return AnswerDelta(text="隋")
        await self.going.wait()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.closed = True


class HoldingAgent(ContractAgent):
    def stream(self, request):
        self.events = HeldStream()
        return self.events


async def test_a_client_disconnect_closes_the_agents_event_stream():
    """Issue #25, item 5: a client that went away mid-stream cancels the response's task; the handler must
    close the agent's stream (which cancels its upstream calls), or the run goes on for nobody. Before,
    only the slow integration test noticed when that close was gone."""
    agent = HoldingAgent()
    lines = await OpenAIServingChat(ApiSettings(), agent).stream(_request(stream=True), "rid")
    got: list[str] = []

    async def consume():
        async for line in lines:
            got.append(line)

    task = asyncio.create_task(consume())
    for _ in range(100):
        if len(got) >= 2:
            break
        await asyncio.sleep(0.01)
    assert '"content":"隋"' in got[1] and not agent.events.closed
    task.cancel()  # what Starlette does when the client disconnects
    with pytest.raises(asyncio.CancelledError):
        await task
    assert agent.events.closed
