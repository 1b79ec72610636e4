"""The API tests' agent double against the real ReActAgent: the same requests are accepted or refused by both,
with the same error and parameter, and both satisfy the react_tier.Agent protocol."""

from __future__ import annotations

import pytest

from react_tier import Agent, AgentInputError, AgentSettings, ReActAgent
from react_tier.request import AgentRequest
from tests.unit.deployments.helpers import ContractAgent

CASES = [
    {"question": "隋朝何时建立？"},
    {"question": "  隋朝  ", "history": [{"role": "user", "content": "a"}] * 9},
    {"question": ""},
    {"question": "问" * 2000},
    {"question": "问" * 2001},
    {"question": "ok", "history": [{"role": "assistant", "content": "x" * 16001}]},
    {"question": "ok", "instructions": "i" * 4001},
    {"question": "ok", "max_steps": 21},
    {"question": "ok", "request_id": "given"},
]


def _outcome(agent, fields: dict):
    try:
        checked = agent.check(AgentRequest(**fields))
    except AgentInputError as exc:
        return "refused", str(exc), exc.param
    return "accepted", checked.question, len(checked.history), bool(checked.request_id), \
        fields.get("request_id", checked.request_id) == checked.request_id


@pytest.fixture(scope="module")
def agents():
    settings = AgentSettings.load()
    return ReActAgent.from_settings(settings), ContractAgent(settings)


@pytest.mark.parametrize("fields", CASES)
def test_double_and_real_agent_agree(agents, fields):
    real, double = agents
    assert _outcome(real, fields) == _outcome(double, fields)


def test_both_implement_the_protocol(agents):
    assert all(isinstance(agent, Agent) for agent in agents)


def test_the_cases_cover_acceptance_and_refusal(agents):
    outcomes = {_outcome(agents[0], fields)[0] for fields in CASES}
    assert outcomes == {"accepted", "refused"}
