"""AgentRequest.checked and GenerationOptions.sampling pinned exactly: each refusal's message and OpenAI parameter
(the 400 a client sees), the boundaries (a question of exactly the limit passes, one more character is refused),
the history cut, the request id, and the sampling fields each agent-model call receives."""

from __future__ import annotations

import re

import pytest

from react_tier.errors import AgentInputError
from react_tier.request import AgentRequest, GenerationOptions, RequestLimits, Turn

LIMITS = RequestLimits(max_question_chars=10, max_history_messages=2, max_history_chars=20,
                       max_instructions_chars=5, max_steps_override=4)


@pytest.mark.parametrize("fields, message, param", [
    ({"question": " \n "}, "the question (the last user message) is empty", "messages"),
    ({"question": "问" * 11}, "the question has 11 characters; the limit is 10", "messages"),
    ({"question": "q", "history": [{"role": "user", "content": "x" * 11}, {"role": "assistant", "content": "y" * 10}]},
     "the conversation history exceeds 20 characters", "messages"),
    ({"question": "q", "instructions": "i" * 6}, "the system/developer instructions exceed 5 characters", "messages"),
    ({"question": "q", "max_steps": 5}, "max_steps 5 is above this tier's limit 4", "sui_max_steps"),
])
def test_each_refusal_names_its_reason_and_parameter(fields, message, param):
    with pytest.raises(AgentInputError) as info:
        AgentRequest(**fields).checked(LIMITS)
    assert (str(info.value), info.value.param) == (message, param)


def test_the_limits_themselves_pass():
    history = [{"role": "user", "content": "x" * 10}, {"role": "assistant", "content": "y" * 10}]
    checked = AgentRequest(question=" " + "问" * 10 + " ", history=history, instructions="i" * 5,
                           max_steps=4).checked(LIMITS)
    assert checked.question == "问" * 10 and len(checked.history) == 2 and checked.max_steps == 4


def test_history_is_cut_to_the_most_recent_turns():
    history = [Turn(role="user", content=str(i)) for i in range(5)]
    assert [t.content for t in AgentRequest(question="q", history=history).checked(LIMITS).history] == ["3", "4"]
    none = RequestLimits(max_history_messages=0)
    assert AgentRequest(question="q", history=history).checked(none).history == []


def test_request_id_is_kept_or_generated():
    assert AgentRequest(question="q", request_id="given").checked(LIMITS).request_id == "given"
    generated = {AgentRequest(question="q").checked(LIMITS).request_id for _ in range(3)}
    assert len(generated) == 3 and all(re.fullmatch(r"[0-9a-f]{16}", rid) for rid in generated)


def test_of_wraps_a_plain_question_and_keeps_a_request():
    request = AgentRequest(question="q", request_id="r")
    assert AgentRequest.of(request) is request and AgentRequest.of("隋").question == "隋"


@pytest.mark.parametrize("options, sampling", [
    ({}, {}),
    ({"temperature": 0.2, "presence_penalty": 0.5, "frequency_penalty": -0.5, "max_tokens": 9, "stop": ["。"]},
     {"temperature": 0.2, "presence_penalty": 0.5, "frequency_penalty": -0.5}),
    ({"top_p": 0.9, "seed": 7, "extra": {"top_k": 3}}, {"top_p": 0.9, "seed": 7, "extra_body": {"top_k": 3}}),
])
def test_sampling_sends_only_what_the_request_set(options, sampling):
    assert GenerationOptions(**options).sampling() == sampling


@pytest.mark.parametrize("options, message", [
    ({"stop": ["a", ""]}, "stop strings must not be empty"),
    ({"extra": {"top_k": 1, "beam_width": 2}}, "unsupported sampling extras ['beam_width']"),
])
def test_generation_options_refusals(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        GenerationOptions(**options)
