"""The pipeline API's protocol and chat handler, with a scripted stand-in for the agent (a unit test of
deployments/serving_chat.py alone; the real stack is exercised in tests/integration/test_stack.py)."""

from __future__ import annotations

import json

import pytest
import yaml

from deployments.config import ApiSettings
from deployments.protocol import ChatCompletionRequest
from deployments.serve_config import serve_config, serve_config_yaml
from deployments.serving_chat import ApiError, OpenAIServingChat, classify_exception
from react_tier import AgentInputError, AgentResult, AnswerDelta, Done, StepStarted, UpstreamError

RESULT = AgentResult.model_validate({
    "answer": "隋文帝", "citations": [{"id": "suishu:卷1:3", "source": "隋书", "title": "帝纪"}],
    "steps": [{"index": 0, "tool": "search_knowledge"}], "finish_reason": "stop", "draft": "d", "request_id": "r1",
    "usage": {"agent": {"prompt_tokens": 10, "completion_tokens": 5},
              "domain": {"prompt_tokens": 3, "completion_tokens": 2}}})


class ScriptedAgent:
    """Stands in for react_tier.ReActAgent: `run` returns RESULT, `stream` yields the given events."""

    def __init__(self, events=()):
        self.events = list(events)
        self.closed = False

    async def run(self, question, request_id=None, history=None):
        return RESULT

    async def stream(self, question, request_id=None, history=None):
        try:
            for event in self.events:
                yield event
        finally:
            self.closed = True


def _request(**kw) -> ChatCompletionRequest:
    return ChatCompletionRequest(**{"model": "sui-react", "messages": [{"role": "user", "content": "隋朝"}], **kw})


async def test_non_streaming_maps_result_and_usage():
    chat = OpenAIServingChat(ApiSettings(), ScriptedAgent())
    resp = await chat.create(_request(), "abc")
    assert resp.id == "chatcmpl-abc" and resp.choices[0].message.content == "隋文帝"
    assert resp.usage.prompt_tokens == 13 and resp.usage.completion_tokens == 7 and resp.usage.total_tokens == 20
    assert resp.sui["citations"][0]["id"] == "suishu:卷1:3" and resp.sui["finish_reason"] == "stop"


async def test_stream_emits_role_deltas_final_usage_and_done():
    events = [StepStarted(index=0), AnswerDelta(text="隋"), AnswerDelta(text="文帝"), Done(result=RESULT)]
    chat = OpenAIServingChat(ApiSettings(), ScriptedAgent(events))
    lines = [line async for line in await chat.stream(
        _request(stream=True, stream_options={"include_usage": True}), "abc")]
    assert lines[-1] == "data: [DONE]\n\n"
    payloads = [json.loads(line[6:]) for line in lines[:-1]]
    assert payloads[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(p["choices"][0]["delta"].get("content", "") for p in payloads if p["choices"]) == "隋文帝"
    final = [p for p in payloads if p["choices"] and p["choices"][0].get("finish_reason") == "stop"]
    assert len(final) == 1 and final[0]["sui"]["request_id"] == "r1"
    assert payloads[-1]["choices"] == [] and payloads[-1]["usage"]["total_tokens"] == 20
    assert not any("sui.step" in line for line in lines)  # plain clients get no named events


async def test_stream_with_sui_events_adds_named_events():
    events = [StepStarted(index=0), Done(result=RESULT)]
    chat = OpenAIServingChat(ApiSettings(), ScriptedAgent(events))
    lines = [line async for line in await chat.stream(_request(stream=True, sui_events=True), "abc")]
    assert any(line.startswith("event: sui.step\n") for line in lines)


@pytest.mark.parametrize("kwargs, status, fragment", [
    ({"model": "other"}, 404, "does not exist"),
    ({"messages": [{"role": "user", "content": "问" * 5000}]}, 400, "limit"),
])
async def test_validation_errors(kwargs, status, fragment):
    chat = OpenAIServingChat(ApiSettings(), ScriptedAgent())
    with pytest.raises(ApiError) as err:
        await chat.create(_request(**kwargs), "x")
    assert err.value.status == status and fragment in err.value.message


def test_request_model_rejects_bad_conversations():
    with pytest.raises(ValueError):
        _request(messages=[])
    with pytest.raises(ValueError, match="unsupported content part"):
        _request(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}])
    with pytest.raises(ValueError, match="role 'user'"):
        _request(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])


def test_exception_classification():
    assert classify_exception(UpstreamError("agent LLM down", status_code=503)).status == 503
    assert classify_exception(UpstreamError("slow", status_code=504)).status == 504
    assert classify_exception(AgentInputError("empty question")).status == 400
    assert classify_exception(TimeoutError()).status == 504
    assert classify_exception(RuntimeError("boom")).status == 500


def test_serve_config_is_valid_for_ray_and_carries_autoscaling(tmp_path):
    settings = ApiSettings.load(port=8181)
    config = serve_config(settings)  # validated against ray.serve.schema.ServeDeploySchema inside
    app = config["applications"][0]
    agent = next(d for d in app["deployments"] if d["name"] == "SuiReAct")
    assert agent["autoscaling_config"]["max_replicas"] == settings.agent_deployment.autoscaling.max_replicas
    assert agent["max_queued_requests"] == settings.agent_deployment.max_queued_requests
    assert app["import_path"] == "deployments.app:app_builder" and config["http_options"]["port"] == 8181
    parsed = yaml.safe_load(serve_config_yaml(settings))
    assert parsed["applications"][0]["args"]["port"] == 8181
    assert "api_key" not in parsed["applications"][0]["args"]["agent"]["agent_llm"]  # from the environment only


def test_fixed_replicas_when_autoscaling_is_off():
    settings = ApiSettings.load(agent_deployment={"autoscaling": None, "num_replicas": 2})
    options = settings.agent_deployment.deployment_options()
    assert options["num_replicas"] == 2 and "autoscaling_config" not in options
    with pytest.raises(ValueError):
        ApiSettings.load(agent_deployment={"autoscaling": {"min_replicas": 3, "max_replicas": 1}})


async def test_stream_failure_midway_is_reported_in_band_and_closes_the_agent_stream():
    class FailingAgent(ScriptedAgent):
        async def stream(self, question, request_id=None, history=None):
            try:
                yield AnswerDelta(text="隋")
                raise UpstreamError("agent LLM timed out", status_code=504)
            finally:
                self.closed = True

    agent = FailingAgent()
    lines = [line async for line in await OpenAIServingChat(ApiSettings(), agent).stream(_request(stream=True), "x")]
    error = json.loads(lines[-2][6:])["error"]
    assert error["code"] == 504 and "timed out" in error["message"]
    assert lines[-1] == "data: [DONE]\n\n" and agent.closed


def test_app_builder_binds_the_deployment_from_serve_config_args(monkeypatch):
    from ray.serve import Application

    from deployments.app import app_builder

    args = serve_config(ApiSettings.load(port=8181))["applications"][0]["args"]
    monkeypatch.setenv("SUIQA_API_MAX_QUESTION_CHARS", "123")
    app = app_builder(args)
    assert isinstance(app, Application) and app._bound_deployment.name == "SuiReAct"
    bound = app._bound_deployment.init_args[0]  # the ApiSettings the replicas are constructed with
    assert bound["port"] == 8181
    assert bound["max_question_chars"] == 4000  # the YAML's value wins over the environment
    monkeypatch.setenv("SUIQA_REACT_AGENT_LLM__API_KEY", "sk-from-env")
    bound = app_builder(args)._bound_deployment.init_args[0]
    assert bound["agent"]["agent_llm"]["api_key"].get_secret_value() == "sk-from-env"  # secrets: the environment
