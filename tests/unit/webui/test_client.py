"""webui/client.py over real HTTP against the pipeline API's own FastAPI routes (deployments.api_router with a
scripted agent in place of the ReAct agent; no Ray, no vLLM): what the page sends, what it reads, how each kind
of failure is classified. The real stack is driven in tests/integration/test_webui.py."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from deployments import api_router
from deployments.config import ApiSettings
from deployments.serving_chat import OpenAIServingChat
from react_tier import AgentResult
from tests.support import free_port
from tests.unit.deployments.helpers import ContractAgent
from webui import events as ev
from webui.client import NO_KEY, RequestOptions, StreamReader, list_models, make_client, stream_events

RESULT = AgentResult.model_validate({
    "answer": "隋文帝", "finish_reason": "stop", "request_id": "r1",
    "citations": [{"id": "suishu:1:1", "source": "book_of_sui", "title": "隋书·高祖纪"}],
    "steps": [{"index": 1, "tool": "search_knowledge", "tool_input": {"query": "隋"}, "observation": "开皇"}]})


class ScriptedAgent(ContractAgent):
    """The API's contract-keeping agent double; records (question, instructions, history) and can be slow."""

    def __init__(self) -> None:
        super().__init__(result=RESULT, deltas=("隋", "文帝"))
        self.delay_s = 0.0
        self.calls: list[tuple[str, str | None, list]] = []

    async def stream(self, request):
        checked = self.check(request)
        self.calls.append((checked.question, checked.instructions, [t.model_dump() for t in checked.history]))
        await asyncio.sleep(self.delay_s)
        async for event in super().stream(request):
            yield event


@pytest.fixture(scope="module")
def api():
    agent = ScriptedAgent()
    app = api_router.create_app(OpenAIServingChat(ApiSettings(), agent))
    seen: list[dict] = []

    @app.middleware("http")
    async def record(request, call_next):
        seen.append({"headers": dict(request.headers), "body": await request.body()})
        return await call_next(request)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1", agent, seen
    server.should_exit = True
    thread.join(10)


def test_a_streamed_answer_with_steps_folds_into_a_complete_turn(api):
    url, agent, seen = api
    agent.delay_s = 0.0
    messages = ev.conversation([], "隋朝的开国皇帝是谁？", system_prompt="简短回答")
    client = make_client(url, "sk-test", timeout_s=10)
    turn = ev.TurnView("隋朝的开国皇帝是谁？", time.monotonic())
    for event in stream_events(client, "sui-react", messages, RequestOptions(max_steps=3, max_tokens=64,
                                                                             temperature=0.2)):
        ev.apply(turn, event, time.monotonic())
    ev.finish(turn, time.monotonic())
    assert turn.ok and turn.answer == "隋文帝" and [s.tool for s in turn.ordered_steps] == ["search_knowledge"]
    assert turn.citations[0].id == "suishu:1:1"
    request = seen[-1]
    body = json.loads(request["body"])
    assert request["headers"]["authorization"] == "Bearer sk-test"
    assert body["stream"] is True and body["sui_events"] is True and body["sui_max_steps"] == 3
    assert body["max_tokens"] == 64 and body["temperature"] == 0.2
    assert agent.calls[-1] == ("隋朝的开国皇帝是谁？", "简短回答", [])  # the system prompt: instructions


def test_a_blank_api_key_sends_the_no_key_placeholder(api):
    url, _, seen = api
    list_models(make_client(url, "  ", timeout_s=5))
    assert seen[-1]["headers"]["authorization"] == f"Bearer {NO_KEY}"


def test_models_cards_come_back_as_dicts(api):
    url, _, _ = api
    cards = list_models(make_client(url, "", timeout_s=5))
    assert cards[0]["id"] == "sui-react"


def test_an_api_error_status_is_classified_with_the_apis_message(api):
    url, _, _ = api
    with pytest.raises(Exception) as info:
        list(stream_events(make_client(url, "", timeout_s=5), "gpt-4", ev.conversation([], "q"), RequestOptions()))
    err = ev.error_of(info.value, url)
    assert err.kind == "http" and err.status == 404 and "does not exist" in err.message


def test_a_dead_endpoint_is_down():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(Exception) as info:
        list_models(make_client(url, "", timeout_s=5, connect_timeout_s=2))
    err = ev.error_of(info.value, url)
    assert err.kind == "down" and url in err.message


def test_a_slow_api_times_out_as_too_slow_and_the_reader_reports_it(api):
    url, agent, _ = api
    agent.delay_s = 2.0
    try:
        client = make_client(url, "", timeout_s=0.5)
        reader = StreamReader(stream_events(client, "sui-react", ev.conversation([], "q"), RequestOptions()))
        items = []
        while not (items and items[-1].end):
            item = reader.get(5)
            assert item is not None, "the reader must end"
            items.append(item)
        errors = [i.error for i in items if i.error is not None]
        assert len(errors) == 1 and ev.error_of(errors[0], url, 0.5).kind == "slow"
    finally:
        agent.delay_s = 0.0


# --- the page itself, rendered by Streamlit's own test runner (no browser) -----------------------------------------

def page(monkeypatch, endpoint: str):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SUIQA_WEBUI_ENDPOINT", endpoint)
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(Path(__file__).resolve().parents[3] / "webui" / "app.py"), default_timeout=30)
    return at.run()


def _html(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_the_page_renders_steps_answer_citations_and_sends_history(api, monkeypatch):
    url, agent, _ = api
    agent.delay_s = 0.0
    at = page(monkeypatch, url)
    assert not at.exception and not at.error
    at.chat_input[0].set_value("隋朝的开国皇帝是谁？").run()
    assert not at.exception and not at.error
    html = _html(at)
    assert '<div class="sui-answer">隋文帝</div>' in html
    assert 'class="sui-step">Step 1: search_knowledge' in html
    assert '<div class="sui-citation">[suishu:1:1] 隋书·高祖纪 (book_of_sui)</div>' in html
    assert '<div class="sui-question">隋朝的开国皇帝是谁？</div>' in html
    assert '<div class="sui-footer">finish_reason=stop · first token' in html
    at.chat_input[0].set_value("他的年号呢？").run()
    assert agent.calls[-1] == ("他的年号呢？", None, [{"role": "user", "content": "隋朝的开国皇帝是谁？"},
                                                     {"role": "assistant", "content": "隋文帝"}])


def test_the_page_says_when_the_api_is_down(monkeypatch):
    url = f"http://127.0.0.1:{free_port()}/v1"
    at = page(monkeypatch, url)
    assert [e.value.split(" — ")[0] for e in at.error] == ["**The API is down**"]
    at.chat_input[0].set_value("隋朝").run()
    assert not at.exception
    assert [e.value.split(" — ")[0] for e in at.error] == ["**The API is down**"] * 2
    assert ev.md_escape(url) in at.error[-1].value  # Markdown source; the browser shows the plain URL
