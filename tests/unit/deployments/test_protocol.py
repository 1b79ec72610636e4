"""The pipeline API's protocol and chat handler, with a scripted stand-in for the agent (a unit test of
deployments/serving_chat.py alone; the real stack is exercised in tests/integration/test_stack.py)."""

from __future__ import annotations

import json

import pytest
import yaml

from deployments.config import ApiSettings
from deployments.errors import ApiError, classify_exception
from deployments.protocol import ChatCompletionRequest
from deployments.serve_config import serve_config, serve_config_yaml
from deployments.serving_chat import OpenAIServingChat
from react_tier import AgentInputError, UpstreamError
from tests.unit.deployments.helpers import RESULT, ContractAgent


def _request(**kw) -> ChatCompletionRequest:
    return ChatCompletionRequest(**{"model": "sui-react", "messages": [{"role": "user", "content": "隋朝"}], **kw})


async def test_non_streaming_maps_result_and_usage():
    agent = ContractAgent()
    resp = await OpenAIServingChat(ApiSettings(), agent).create(_request(), "abc")
    assert resp.id == "chatcmpl-abc" and resp.choices[0].message.content == "隋文帝"
    assert resp.choices[0].finish_reason == "stop"
    # prompt tokens: every upstream call; completion tokens: the answer's (what max_completion_tokens caps)
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (13, 3, 16)
    assert resp.sui.citations[0].id == "suishu:卷1:3" and resp.sui.citations[0].text == "高祖文皇帝"
    assert resp.sui.finish_reason == "stop" and resp.sui.request_id == "abc"
    assert resp.sui.grounding.score == 0.5 and resp.sui.grounding.flagged[0].reason == "unsupported"
    assert agent.requests[0].request_id == "abc" and agent.requests[0].question == "隋朝"


async def test_stream_emits_role_deltas_final_usage_and_done():
    chat = OpenAIServingChat(ApiSettings(), ContractAgent())
    lines = [line async for line in await chat.stream(
        _request(stream=True, stream_options={"include_usage": True}), "abc")]
    assert lines[-1] == "data: [DONE]\n\n"
    payloads = [json.loads(line[6:]) for line in lines[:-1]]
    assert payloads[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(p["choices"][0]["delta"].get("content", "") for p in payloads if p["choices"]) == "隋文帝"
    final = [p for p in payloads if p["choices"] and p["choices"][0].get("finish_reason") == "stop"]
    assert len(final) == 1 and final[0]["sui"]["request_id"] == "abc"
    assert payloads[-1]["choices"] == [] and payloads[-1]["usage"]["total_tokens"] == 16
    assert not any("sui.step" in line for line in lines)  # plain clients get no named events


async def test_stream_with_sui_events_adds_named_events():
    chat = OpenAIServingChat(ApiSettings(), ContractAgent())
    lines = [line async for line in await chat.stream(_request(stream=True, sui_events=True), "abc")]
    steps = [json.loads(line.split("data: ", 1)[1]) for line in lines if line.startswith("event: sui.step\n")]
    assert [s["type"] for s in steps] == ["step_started", "step_finished"]
    assert steps[1]["step"]["tool"] == "search_knowledge"


async def test_truncated_answer_is_finish_reason_length():
    agent = ContractAgent(result=RESULT.model_copy(update={"truncated": True, "finish_reason": "max_steps"}))
    resp = await OpenAIServingChat(ApiSettings(), agent).create(_request(max_tokens=3), "abc")
    assert resp.choices[0].finish_reason == "length" and resp.sui.finish_reason == "max_steps"
    assert resp.sui.truncated and agent.requests[0].generation.max_tokens == 3


@pytest.mark.parametrize("kwargs, status, fragment", [
    ({"model": "other"}, 404, "does not exist"),
    ({"messages": [{"role": "user", "content": "问" * 2001}]}, 400, "2001 characters; the limit is 2000"),
    ({"messages": [{"role": "system", "content": "s" * 4001}, {"role": "user", "content": "问"}]}, 400,
     "instructions exceed 4000"),
])
async def test_validation_errors(kwargs, status, fragment):
    chat = OpenAIServingChat(ApiSettings(), ContractAgent())
    for stream in (False, True):  # the same refusal before any byte, streamed or not
        with pytest.raises(ApiError) as err:
            await (chat.stream if stream else chat.create)(_request(stream=stream, **kwargs), "x")
        assert err.value.status == status and fragment in err.value.message


def test_to_agent_request_maps_every_honoured_parameter():
    request = _request(messages=[
        {"role": "system", "content": "只用中文。"}, {"role": "developer", "content": "简短。"},
        {"role": "user", "content": "旧问题"}, {"role": "assistant", "content": "旧回答"},
        {"role": "user", "content": [{"type": "text", "text": "隋朝"}, {"type": "text", "text": "何时建立？"}]}],
        max_completion_tokens=64, temperature=0.2, top_p=0.9, seed=3, stop="。", presence_penalty=0.5,
        frequency_penalty=-0.5, top_k=5, ignore_eos=True, user="u1", sui_max_steps=2, n=1, logprobs=False,
        response_format={"type": "text"}, tool_choice="none")
    agent_request = request.to_agent_request("rid")
    assert agent_request.question == "隋朝何时建立？" and agent_request.instructions == "只用中文。\n\n简短。"
    assert [(t.role, t.content) for t in agent_request.history] == [("user", "旧问题"), ("assistant", "旧回答")]
    gen = agent_request.generation
    assert (gen.max_tokens, gen.temperature, gen.top_p, gen.seed, gen.stop) == (64, 0.2, 0.9, 3, ["。"])
    assert (gen.presence_penalty, gen.frequency_penalty, gen.extra) == (0.5, -0.5, {"top_k": 5, "ignore_eos": True})
    assert (agent_request.max_steps, agent_request.user, agent_request.request_id) == (2, "u1", "rid")
    assert _request(max_tokens=7).to_agent_request().generation.max_tokens == 7


def test_request_model_rejects_bad_conversations():
    with pytest.raises(ValueError):
        _request(messages=[])
    with pytest.raises(ValueError, match="unsupported content part"):
        _request(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}])
    with pytest.raises(ValueError, match="role 'user'"):
        _request(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    with pytest.raises(ValueError, match="role 'tool'"):
        _request(messages=[{"role": "tool", "content": "a", "tool_call_id": "x"}, {"role": "user", "content": "b"}])


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
    # the replica holds what its admission can take (runs + queue), the proxy as many as the starting replicas run
    # while it places them; Ray's proxy refuses the rest
    assert agent["max_ongoing_requests"] == settings.admission.max_in_flight + settings.admission.max_queue == 12
    assert settings.agent_deployment.replicas_at_start() == 1
    assert agent["max_queued_requests"] == settings.admission.max_in_flight == 4
    assert agent["backpressure_config"] == {"status_code": 429, "retry_after_s": 2}  # Ray's overflow: 429, not 503
    assert app["import_path"] == "deployments.app:app_builder" and config["http_options"]["port"] == 8181
    parsed = yaml.safe_load(serve_config_yaml(settings))
    assert parsed["applications"][0]["args"]["port"] == 8181
    assert "api_key" not in parsed["applications"][0]["args"]["agent"]["agent_llm"]  # from the environment only


def test_fixed_replicas_when_autoscaling_is_off():
    settings = ApiSettings.load(agent_deployment={"autoscaling": None, "num_replicas": 2})
    options = settings.deployment_options()
    assert options["num_replicas"] == 2 and "autoscaling_config" not in options
    with pytest.raises(ValueError):
        ApiSettings.load(agent_deployment={"autoscaling": {"min_replicas": 3, "max_replicas": 1}})


@pytest.mark.parametrize(("deployment", "start"), [
    ({"autoscaling": None, "num_replicas": 2}, 2),
    ({"autoscaling": {"min_replicas": 4, "max_replicas": 8}}, 4),
    ({"autoscaling": {"min_replicas": 0, "max_replicas": 8}}, 1),  # scaled to zero: the first replica's runs
    ({"autoscaling": {"min_replicas": 1, "initial_replicas": 3, "max_replicas": 8}}, 3),
])
def test_the_proxy_queue_holds_a_burst_the_starting_replicas_can_run(deployment, start):
    """Ray counts a request as queued until it is placed: a proxy queue of one replica's runs refused 110 of a
    128-client burst on 4 replicas (H100, 2026-12-07); unset, it is every starting replica's runs."""
    settings = ApiSettings.load(agent_deployment=deployment, admission={"max_in_flight": 32, "max_queue": 24})
    options = settings.deployment_options()
    assert settings.agent_deployment.replicas_at_start() == start
    assert options["max_queued_requests"] == 32 * start
    assert options["max_ongoing_requests"] == 56  # per replica, unchanged
    pinned = ApiSettings.load(agent_deployment={**deployment, "max_queued_requests": 5}).deployment_options()
    assert pinned["max_queued_requests"] == 5


async def test_stream_failure_midway_is_reported_in_band_and_closes_the_agent_stream():
    agent = ContractAgent(fail=UpstreamError("agent LLM timed out", status_code=504), fail_after=1)
    lines = [line async for line in await OpenAIServingChat(ApiSettings(), agent).stream(_request(stream=True), "x")]
    error = json.loads(lines[-2][6:])["error"]
    assert error["code"] == 504 and "timed out" in error["message"]
    assert lines[-1] == "data: [DONE]\n\n" and agent.closed == 1


def test_app_builder_binds_the_deployment_from_serve_config_args(monkeypatch):
    from ray.serve import Application

    from deployments.app import app_builder

    args = serve_config(ApiSettings.load(port=8181, request_timeout_s=30))["applications"][0]["args"]
    monkeypatch.setenv("SUIQA_API_REQUEST_TIMEOUT_S", "45")
    monkeypatch.setenv("SUIQA_REACT_DEADLINE_S", "7")
    monkeypatch.setenv("SUIQA_API_API_KEYS", "ci:sk-test-0123456789abcdef")  # the default profile requires keys
    app = app_builder(args)
    assert isinstance(app, Application) and app._bound_deployment.name == "SuiReAct"
    bound = app._bound_deployment.init_args[0]  # the ApiSettings the replicas are constructed with
    assert bound["port"] == 8181  # from the YAML's args
    assert bound["request_timeout_s"] == 45 and bound["agent"]["deadline_s"] == 7  # the environment beats the YAML
    monkeypatch.setenv("SUIQA_REACT_AGENT_LLM__API_KEY", "sk-from-env")
    bound = app_builder(args)._bound_deployment.init_args[0]
    assert bound["agent"]["agent_llm"]["api_key"].get_secret_value() == "sk-from-env"  # secrets: the environment


@pytest.mark.parametrize("profile", ["api-gpu", "api-gpu-bench"])
def test_gpu_profiles_queue_in_the_proxy_not_behind_a_replicas_runs(profile):
    """With a queue in every replica Ray's router put requests behind 32 runs while other replicas had free slots,
    and they were refused after the queue timeout (benchmarks/results/cpu_harness/ROUTING.md): a GPU replica holds
    only its runs, and Ray's proxy holds what waits."""
    from deployments.config import PROFILES_DIR

    settings = ApiSettings.load(PROFILES_DIR / f"{profile}.yaml")
    options = settings.deployment_options()
    assert settings.admission.max_queue == 0
    assert options["max_ongoing_requests"] == settings.admission.max_in_flight == 32
    assert options["max_queued_requests"] == 4 * 32  # the starting replicas' runs wait in the proxy


def test_a_text_part_whose_text_is_not_a_string_is_refused_saying_so():
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as refused:
        ChatCompletionRequest.model_validate({"model": "sui-react", "messages": [
            {"role": "user", "content": [{"type": "text", "text": 5}]}]}).messages[0].text()
    assert refused.value.errors()[0]["msg"] == "Value error, a text content part's text must be a string"
