"""The quality ladder (deployments/quality_ladder.py): the step from the real Admission's expected wait, what each
step does to a real ReActAgent run (against the scripted OpenAI server), the ingress's 429 beyond the last step,
and grounded goodput."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi.testclient import TestClient

from deployments.admission import Admission
from deployments.quality_ladder import Ladder, LadderAgent, QualityLadderSettings, goodput_outcome, set_step
from react_tier.request import AgentRequest
from tests.unit.deployments.helpers import RESULT, ContractAgent
from tests.unit.react_tier.helpers import ANSWER, SEARCH, make_agent

LADDER = QualityLadderSettings(enabled=True, fewer_steps_after_s=2, no_draft_after_s=4, extractive_after_s=6,
                               extractive_max_in_flight=1)


async def busy_admission(mean_run_s: float | None, waiting: int = 0) -> Admission:
    """One slot, taken by a run that started now; ``waiting`` requests queued; runs take ``mean_run_s``."""
    now = [100.0]
    admission = Admission(max_in_flight=1, max_queue=4, queue_timeout_s=10, retry_after_s=2, clock=lambda: now[0])
    await admission.enter()
    admission.mean_run_s, admission.waiting = mean_run_s, waiting
    return admission


def saturate(admission: Admission) -> None:
    """Every run slot taken by a run that started now; runs take 60 s, so the expected wait is past every step."""
    admission._slots._value = 0
    admission._running = {0: time.monotonic()}
    admission.mean_run_s = 60.0


@pytest.mark.parametrize("mean_run_s, waiting, step", [
    (1.0, 0, "full"),          # next slot in 1 s
    (3.0, 0, "fewer_steps"),   # 3 s
    (5.0, 0, "no_draft"),      # 5 s
    (2.5, 2, "extractive"),    # position 3: 2.5 + 2 x 2.5 = 7.5 s
    (3.0, 4, "extractive"),    # the queue is full: not a 429 while the extractive lane has room
    (None, 0, "full"),         # no finished run yet: no estimate
])
async def test_step_follows_the_expected_wait(mean_run_s, waiting, step):
    assert Ladder(LADDER).choose(await busy_admission(mean_run_s, waiting)) == step


async def test_idle_replica_is_full_and_a_full_extractive_lane_is_a_refusal():
    idle = Admission(max_in_flight=1, max_queue=4, queue_timeout_s=10, retry_after_s=2)
    ladder = Ladder(LADDER)
    assert ladder.choose(idle) == "full"
    ladder.extractive_in_flight = 1
    assert ladder.choose(await busy_admission(9.0)) is None


def test_thresholds_must_be_ordered():
    with pytest.raises(ValueError, match="ordered"):
        QualityLadderSettings(fewer_steps_after_s=5, no_draft_after_s=4)


async def run_at(scripted, step: str, **agent_settings):
    agent, _ = make_agent(scripted, **agent_settings)
    front = LadderAgent(agent, LADDER, agent.settings.max_steps)

    async def go():
        set_step(step)  # what the ingress middleware does for this request's context
        return await front.run(front.check(AgentRequest(question="通济渠是哪一年开的？")))

    result = await asyncio.create_task(go())
    await agent.aclose()
    return result


async def test_full_step_runs_draft_and_loop(scripted):
    scripted.script("domain", "草稿")
    scripted.script("agent", SEARCH, ANSWER)
    result = await run_at(scripted, "full")
    assert result.quality == "full" and result.draft == "草稿" and result.finish_reason == "stop"


async def test_fewer_steps_caps_the_loop(scripted):
    scripted.script("domain", "草稿")
    scripted.script("agent", SEARCH, ANSWER, ANSWER)
    result = await run_at(scripted, "fewer_steps")  # 1 step: the search; then one forced final call
    assert result.quality == "fewer_steps" and result.finish_reason == "max_steps" and result.draft == "草稿"
    assert len(scripted.requests_for("agent")) == 2


async def test_no_draft_skips_the_domain_model(scripted):
    scripted.script("agent", SEARCH, ANSWER)
    result = await run_at(scripted, "no_draft")
    assert result.quality == "no_draft" and result.draft is None and scripted.requests_for("domain") == []


async def test_extractive_makes_no_llm_call_and_cites_the_evidence(scripted):
    result = await run_at(scripted, "extractive", always_search_first=False)
    assert result.quality == "extractive" and result.finish_reason == "degraded"
    assert scripted.requests_for("agent") == [] and scripted.requests_for("domain") == []
    assert result.citations and result.steps[0].forced and result.steps[0].tool == "search_knowledge"
    assert result.grounding.score >= LADDER.min_grounding


def test_goodput_outcome():
    grounded = RESULT.model_copy(update={"grounding": RESULT.grounding.model_copy(update={"score": 0.9})})
    now = time.perf_counter()
    assert goodput_outcome(grounded, now, LADDER) == "grounded"
    assert goodput_outcome(grounded, now - LADDER.slo_s - 1, LADDER) == "late"
    assert goodput_outcome(RESULT.model_copy(update={"citations": []}), now, LADDER) == "ungrounded"
    low = RESULT.model_copy(update={"grounding": RESULT.grounding.model_copy(update={"score": 0.1})})
    assert goodput_outcome(low, now, LADDER) == "ungrounded"


def test_ingress_refuses_beyond_the_ladder_and_counts_steps_and_goodput():
    from deployments.api_router import create_app
    from deployments.config import ApiSettings
    from deployments.metrics import PipelineMetrics
    from deployments.serving_chat import OpenAIServingChat

    settings = ApiSettings.load(quality_ladder=LADDER.model_dump(), admission={"max_in_flight": 1})
    metrics = PipelineMetrics()
    inner = ContractAgent(settings.agent)
    chat = OpenAIServingChat(settings, LadderAgent(inner, settings.quality_ladder, 5, metrics), metrics)
    app = create_app(chat)
    client = TestClient(app)
    body = {"model": "sui-react", "messages": [{"role": "user", "content": "隋朝何时建立？"}]}
    ok = client.post("/v1/chat/completions", json=body)
    assert ok.status_code == 200 and ok.json()["sui"]["quality"] == "full"
    gate = app.state.gate
    assert gate.ladder is not None
    gate.ladder.extractive_in_flight = 1  # the lane is full ...
    saturate(gate.admission)  # ... and every run slot is taken by a long run
    refused = client.post("/v1/chat/completions", json=body)
    assert refused.status_code == 429 and refused.headers["retry-after"]
    assert "overloaded" in refused.json()["error"]["message"]
    value = metrics.registry.get_sample_value
    assert value("sui_quality_step_total", {"step": "full"}) == 1
    assert value("sui_goodput_total", {"step": "full", "outcome": "grounded"}) == 1  # cites; grounding 0.5


def test_ladder_off_is_todays_policy():
    from deployments.api_router import create_app
    from deployments.config import ApiSettings
    from deployments.serving_chat import OpenAIServingChat

    settings = ApiSettings.load()
    app = create_app(OpenAIServingChat(settings, LadderAgent(ContractAgent(settings.agent),
                                                             settings.quality_ladder, 5)))
    assert app.state.gate.ladder is None and settings.quality_ladder.enabled is False


def test_an_app_under_a_route_prefix_is_guarded_too():
    """Serve passes a route prefix as root_path with the full path: the guard (and so the ladder) must still see
    /v1/ (the stack test deploys its ladder probe under /ladder-probe)."""
    from deployments.api_router import create_app
    from deployments.config import ApiSettings
    from deployments.serving_chat import OpenAIServingChat

    settings = ApiSettings.load(quality_ladder=LADDER.model_dump(), admission={"max_in_flight": 1})
    app = create_app(OpenAIServingChat(settings, LadderAgent(ContractAgent(settings.agent), LADDER, 5)))
    gate = app.state.gate
    gate.ladder.extractive_in_flight = 1
    saturate(gate.admission)
    client = TestClient(app, root_path="/probe")
    body = {"model": "sui-react", "messages": [{"role": "user", "content": "隋朝何时建立？"}]}
    assert client.post("/probe/v1/chat/completions", json=body).status_code == 429


async def test_an_extractive_answer_cut_by_max_tokens_keeps_its_citation(scripted):
    """The id comes first on each line, so a short max_tokens still leaves a cited answer."""
    agent, _ = make_agent(scripted, always_search_first=False)
    front = LadderAgent(agent, LADDER, agent.settings.max_steps)

    async def go():
        set_step("extractive")
        return await front.run(front.check(AgentRequest(question="通济渠是哪一年开的？",
                                                        generation={"max_tokens": 24})))

    result = await asyncio.create_task(go())
    await agent.aclose()
    assert result.truncated and result.citations and result.answer.startswith("[")


def test_the_extractive_lane_takes_a_request_without_a_run_slot_and_counts_it_while_it_runs():
    from deployments.api_router import create_app
    from deployments.config import ApiSettings
    from deployments.serving_chat import OpenAIServingChat

    settings = ApiSettings.load(quality_ladder={**LADDER.model_dump(), "extractive_max_in_flight": 2},
                                admission={"max_in_flight": 1})
    in_lane: list[int] = []

    class Recording(ContractAgent):
        async def stream(self, request):
            in_lane.append(gate.ladder.extractive_in_flight)
            async for event in super().stream(request):
                yield event

    agent = Recording(settings.agent)
    app = create_app(OpenAIServingChat(settings, LadderAgent(agent, settings.quality_ladder, 5)))
    gate = app.state.gate
    saturate(gate.admission)  # the lane has room
    client = TestClient(app)
    body = {"model": "sui-react", "messages": [{"role": "user", "content": "隋朝何时建立？"}]}
    for running in (0, 1):  # with the lane empty, then with one extractive answer running already
        gate.ladder.extractive_in_flight = running
        resp = client.post("/v1/chat/completions", json=body)
        assert resp.status_code == 200 and agent.requests[-1].quality == "extractive"
        assert in_lane[-1] == running + 1 and gate.ladder.extractive_in_flight == running  # counted, released
    gate.ladder.extractive_in_flight = 2  # now the lane is full too
    refused = client.post("/v1/chat/completions", json=body)
    assert refused.json()["error"]["message"] == (
        "the API is overloaded (no run slot in time, extractive lane full); retry later")
