"""OpenAIServingChat (deployments/serving_chat.py) pinned where mutation testing found it unpinned: what it records
in the API metrics (status per response, e2e and TTFT per stream mode), the whole-request deadline on both paths
(a 504 before the response, an in-band 504 error mid-stream), and the exact SSE framing."""

from __future__ import annotations

import asyncio
import json

import pytest

from deployments.config import ApiSettings
from deployments.protocol import ChatCompletionRequest
from deployments.serving_chat import ApiError, OpenAIServingChat
from react_tier import UpstreamError
from tests.unit.agent_fakes import ContractAgent


class Recorder:
    """The ApiMetrics interface (e2e, ttft histograms; requests counter), recording each call."""

    class _Series:
        def __init__(self, log: list, name: str) -> None:
            self.log, self.name = log, name

        def observe(self, value: float, tags: dict) -> None:
            assert value >= 0
            self.log.append((self.name, dict(tags)))

        def inc(self, value: float = 1.0, tags: dict | None = None) -> None:
            self.log.append((self.name, dict(tags or {})))

    def __init__(self) -> None:
        self.log: list[tuple[str, dict]] = []
        self.e2e, self.ttft, self.requests = (self._Series(self.log, n) for n in ("e2e", "ttft", "requests"))


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
    assert metrics.log == [("e2e", {"stream": "false"}), ("ttft", {"stream": "false"}), ("requests", {"status": "200"})]


async def test_metrics_of_a_stream_and_of_a_failed_stream():
    metrics = Recorder()
    await _lines(OpenAIServingChat(ApiSettings(), ContractAgent(), metrics))
    assert metrics.log == [("e2e", {"stream": "true"}), ("ttft", {"stream": "true"}), ("requests", {"status": "200"})]
    metrics = Recorder()
    agent = ContractAgent(fail=UpstreamError("agent LLM unreachable", status_code=503), fail_after=1)
    await _lines(OpenAIServingChat(ApiSettings(), agent, metrics))
    assert metrics.log == [("requests", {"status": "503"})]


async def test_count_response_and_no_metrics():
    metrics = Recorder()
    chat = OpenAIServingChat(ApiSettings(), ContractAgent(), metrics)
    chat.count_response(429)
    assert metrics.log == [("requests", {"status": "429"})]
    OpenAIServingChat(ApiSettings(), ContractAgent()).count_response(500)  # no metrics: nothing to record


async def test_the_json_path_has_a_whole_request_deadline():
    chat = OpenAIServingChat(ApiSettings.load(request_timeout_s=0.2), SlowAgent(0.5))
    with pytest.raises(TimeoutError):
        await chat.create(_request(), "rid")


async def test_a_stream_past_the_deadline_ends_with_an_in_band_504():
    lines = await _lines(OpenAIServingChat(ApiSettings.load(request_timeout_s=0.3), SlowAgent(0.2)))
    assert lines[-1] == "data: [DONE]\n\n"
    error = json.loads(lines[-2][len("data: "):])["error"]
    assert (error["code"], error["type"]) == (504, "upstream_timeout")
    assert error["message"] == "the request exceeded the pipeline's time limit"


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
