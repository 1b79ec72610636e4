"""The web chat's event handling (webui/events.py), without a browser: SSE framing, folding step events, answer
deltas, the final chunk's extras, in-band and HTTP errors, banners, history. The SSE lines come from the real
producer (deployments.serving_chat with a scripted agent), so the page is checked against the API's wire format."""

from __future__ import annotations

import json

import httpx2
import openai
import pytest

from deployments.config import ApiSettings
from deployments.protocol import ChatCompletionRequest
from deployments.serving_chat import OpenAIServingChat
from react_tier import AgentResult, AnswerDelta, Done, StepStarted, UpstreamError
from react_tier.results import StepFinished
from tests.unit.deployments.helpers import ContractAgent
from webui import events as ev

STEP1 = {"index": 1, "thought": "先查隋书", "tool": "search_knowledge", "tool_input": {"query": "大运河"},
         "observation": "[suishu:3:1] 大业元年，开通济渠。", "latency_s": 0.12, "error": None, "forced": True}
RESULT = {"answer": "隋炀帝", "finish_reason": "stop", "draft": "草稿", "request_id": "r1",
          "citations": [{"id": "suishu:3:1", "source": "book_of_sui", "title": "隋书·炀帝纪"}],
          "steps": [STEP1, {"index": 2, "thought": "够了", "latency_s": 0.05}],
          "usage": {"agent": {"prompt_tokens": 10, "completion_tokens": 5, "calls": 2},
                    "domain": {"prompt_tokens": 3, "completion_tokens": 2, "calls": 1}}}


class ScriptedAgent(ContractAgent):
    """The API's contract-keeping agent double, streaming the given events."""

    def __init__(self, events):
        super().__init__()
        self.events = events

    async def stream(self, request):
        self.check(request)
        for event in self.events:
            yield event


async def wire(events, **request) -> list[str]:
    """The exact SSE body the pipeline API sends for these agent events."""
    chat = OpenAIServingChat(ApiSettings(), ScriptedAgent(events))
    body = ChatCompletionRequest(**{"model": "sui-react", "messages": [{"role": "user", "content": "隋朝"}],
                                    "stream": True, "sui_events": True, **request})
    text = "".join([line async for line in await chat.stream(body, "r1")])
    return text.split("\n")


def fold(lines: list[str]) -> ev.TurnView:
    """Feed the lines one by one, one simulated second apart."""
    turn, clock = ev.TurnView(question="隋朝", started_at=0.0), iter(range(1, 10_000))
    parser = ev.SSEParser()
    for line in lines:
        if (event := parser.feed(line)) is not None:
            ev.apply(turn, event, float(next(clock)))
    if (event := parser.flush()) is not None:
        ev.apply(turn, event, float(next(clock)))
    return turn


def agent_events(result=RESULT):
    return [StepStarted(index=1), StepFinished(step=STEP1), StepStarted(index=2),
            AnswerDelta(text="隋"), AnswerDelta(text="炀帝"), Done(result=AgentResult.model_validate(result))]


# --- SSE framing ---------------------------------------------------------------------------------------------------

def test_sse_parser_frames_named_events_multiline_data_and_comments():
    parser = ev.SSEParser()
    lines = [": keep-alive", "event: sui.step", 'data: {"a":', "data:1}", "", "data: [DONE]", ""]
    events = [e for e in map(parser.feed, lines) if e is not None]
    assert events == [ev.SSEEvent("sui.step", '{"a":\n1}'), ev.SSEEvent("message", "[DONE]")]
    assert parser.flush() is None


def test_sse_parser_flushes_an_unterminated_last_event():
    parser = ev.SSEParser()
    assert parser.feed("data: x") is None
    assert parser.flush() == ev.SSEEvent("message", "x")


# --- folding the real wire format ----------------------------------------------------------------------------------

async def test_steps_answer_and_extras_fold_into_the_view():
    turn = fold(await wire(agent_events()))
    assert turn.done and turn.ok and turn.error is None
    assert turn.answer == "隋炀帝" and turn.finish_reason == "stop" and turn.request_id == "r1"
    steps = turn.ordered_steps
    assert [s.index for s in steps] == [1, 2] and not any(s.running for s in steps)
    assert steps[0].tool == "search_knowledge" and steps[0].input_text == '{"query": "大运河"}'
    assert steps[0].forced and "大业元年" in steps[0].observation and steps[0].title.endswith("0.12 s")
    assert turn.citations == [ev.CitationView("suishu:3:1", "book_of_sui", "隋书·炀帝纪", None)]
    assert turn.usage["agent"]["calls"] == 2 and turn.draft == "草稿"
    assert turn.first_token_at is not None and turn.ttft_s() < turn.total_s()
    line = ev.timings_line(turn)
    assert "finish_reason=stop" in line and "2 steps" in line and "agent 10+5 tok/2 calls" in line
    assert ev.banners(turn, now=turn.finished_at, slow_after_s=1e9) == []


async def test_step_events_show_a_running_step_before_it_finishes():
    lines = await wire(agent_events())
    turn = ev.TurnView(question="q", started_at=0.0)
    parser, seen = ev.SSEParser(), []
    for line in lines:
        if (event := parser.feed(line)) is not None:
            ev.apply(turn, event, 1.0)
            seen.append([(s.index, s.running) for s in turn.ordered_steps])
    assert [(1, True)] in seen and [(1, False), (2, True)] in seen
    assert turn.ordered_steps[0].title.startswith("Step 1: search_knowledge (forced)")
    assert ev.StepView(index=3).title == "Step 3: running…"


async def test_citation_passage_text_is_shown_when_the_api_sends_it():
    result = {**RESULT, "citations": [{"id": "c1", "source": "s", "title": "t", "text": "开皇元年"}],
              "grounding": {"score": 0.75}}
    turn = ev.apply_extras(ev.TurnView("q", 0.0), result)
    assert turn.citations[0].text == "开皇元年" and turn.citations[0].label == "[c1] t (s)"
    assert turn.grounding == {"score": 0.75}
    turn.done = True
    assert "grounding 0.75" in ev.timings_line(turn)


@pytest.mark.parametrize("reason, level, title", [
    ("degraded", "warning", "Degraded answer"),
    ("deadline", "warning", "Time budget spent"),
    ("max_steps", "info", "Step limit reached"),
])
async def test_finish_reasons_other_than_stop_get_a_banner(reason, level, title):
    turn = fold(await wire(agent_events({**RESULT, "finish_reason": reason})))
    assert turn.finish_reason == reason and turn.ok
    assert [(b.level, b.title) for b in ev.banners(turn, turn.finished_at, 1e9)] == [(level, title)]


async def test_an_in_band_error_after_the_status_line_is_an_error_banner():
    class Failing(ScriptedAgent):
        async def stream(self, request):
            self.check(request)
            yield AnswerDelta(text="隋")
            raise UpstreamError("agent LLM timed out", status_code=504)

    chat = OpenAIServingChat(ApiSettings(), Failing([]))
    body = ChatCompletionRequest(model="sui-react", messages=[{"role": "user", "content": "q"}], stream=True)
    lines = "".join([line async for line in await chat.stream(body, "x")]).split("\n")
    turn = fold(lines)
    assert turn.done and not turn.ok and turn.answer == "隋"
    assert turn.error == ev.ErrorView("stream", "agent LLM timed out", 504)
    [banner] = ev.banners(turn, turn.finished_at, 1e9)
    assert banner.level == "error" and banner.text == "HTTP 504: agent LLM timed out"


def test_a_stream_that_ends_without_its_final_chunk_is_an_error():
    turn = fold(['data: {"choices": [{"delta": {"content": "隋"}}]}', ""])
    assert not turn.done
    ev.finish(turn, 5.0)
    assert turn.done and turn.error.kind == "stream" and "before its final chunk" in turn.error.message


def test_garbage_on_the_stream_is_an_error_not_a_crash():
    turn = fold(["data: {not json", ""])
    assert turn.error.kind == "stream" and "unreadable" in turn.error.message
    before = turn.error
    ev.apply(turn, ev.SSEEvent(data="[DONE]"), 9.0)  # nothing after the end changes the turn
    assert turn.error is before


# --- HTTP failures (the openai client's exceptions) ----------------------------------------------------------------

def _request() -> httpx2.Request:
    return httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")


def test_connection_refused_means_the_api_is_down():
    exc = openai.APIConnectionError(request=_request())
    exc.__cause__ = ConnectionRefusedError("[Errno 111] Connection refused")
    err = ev.error_of(exc, "http://127.0.0.1:9/v1")
    assert err.kind == "down" and "cannot reach http://127.0.0.1:9/v1" in err.message and "refused" in err.message
    assert ev.ERROR_TITLES[err.kind] == "The API is down"


def test_a_read_timeout_means_the_api_is_too_slow():
    err = ev.error_of(openai.APITimeoutError(request=_request()), "E", timeout_s=30)
    assert err == ev.ErrorView("slow", "no answer from E within 30 s")


def test_an_http_error_shows_the_apis_message_and_status():
    body = {"message": "model 'x' does not exist; this API serves 'sui-react'", "type": "not_found_error",
            "param": "model", "code": 404}
    response = httpx2.Response(404, json={"error": body}, request=_request())
    exc = openai.NotFoundError(f"Error code: 404 - {body}", response=response, body=body)
    turn = ev.apply_exception(ev.TurnView("q", 0.0), exc, 1.0)
    assert turn.error == ev.ErrorView("http", body["message"], 404)
    assert ev.banners(turn, 1.0, 1e9)[0].text == f"HTTP 404: {body['message']}"


def test_slow_banner_while_waiting_and_after_a_slow_first_token():
    turn = ev.TurnView("q", started_at=100.0)
    assert ev.banners(turn, now=110.0, slow_after_s=20) == []
    [waiting] = ev.banners(turn, now=125.0, slow_after_s=20)
    assert (waiting.level, waiting.title, waiting.text) == ("warning", "The API is slow", "no answer token after 25 s")
    ev.apply(turn, ev.SSEEvent(data=json.dumps({"choices": [{"delta": {"content": "隋"}}]})), 130.0)
    assert ev.banners(turn, now=131.0, slow_after_s=20)[0].title == "The API was slow"


# --- conversation, tiny-model note, escaping -----------------------------------------------------------------------

async def test_history_is_sent_as_multi_turn_messages_without_failed_turns():
    good = fold(await wire(agent_events()))
    failed = ev.apply_exception(ev.TurnView("坏的", 0.0), RuntimeError("x"), 1.0)
    messages = ev.conversation([good, failed], "然后呢？", system_prompt="你是隋史专家")
    assert messages == [{"role": "system", "content": "你是隋史专家"}, {"role": "user", "content": "隋朝"},
                        {"role": "assistant", "content": "隋炀帝"}, {"role": "user", "content": "然后呢？"}]
    assert ev.conversation([], "q") == [{"role": "user", "content": "q"}]
    ChatCompletionRequest(model="sui-react", messages=messages)  # the API accepts it


def test_tiny_models_note_only_when_the_models_card_says_so():
    assert ev.tiny_models_note([{"id": "sui-react", "sui": {"tiny_models": True, "profile": "cpu-tiny"}}])
    assert ev.tiny_models_note([{"id": "sui-react", "sui": {"tiny_models": False}}]) is None
    assert ev.tiny_models_note([{"id": "sui-react"}]) is None


def test_model_output_is_escaped_for_markdown():
    assert ev.md_escape("# 隋 *x* $1$") == "\\# 隋 \\*x\\* \\$1\\$"
    assert ev.md_escape("http://127.0.0.1:8080/v1 (x)") == "http://127.0.0.1:8080/v1 (x)"


def test_mid_stream_transport_failures_are_classified():
    assert ev.error_of(httpx2.ReadTimeout("timed out"), "E", 5).kind == "slow"
    err = ev.error_of(httpx2.RemoteProtocolError("peer closed connection"), "E")
    assert err.kind == "stream" and "broke mid-answer" in err.message


def test_html_blocks_escape_model_output():
    assert ev.html_block("sui-answer", "<script>x</script>\n隋") == \
        '<div class="sui-answer">&lt;script&gt;x&lt;/script&gt;<br>隋</div>'
