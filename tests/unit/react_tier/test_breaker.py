"""Upstream faults: the circuit breaker's states, and LLMClient against a dead port and a hung server (real HTTP
on 127.0.0.1): a dead tier is known within 2 s, then calls fail fast while the breaker is open; a hung stream is
cut by the idle timeout, not the whole-call timeout."""

from __future__ import annotations

import time

import openai
import pytest

from react_tier.breaker import CircuitBreaker, CircuitOpenError
from react_tier.llm import LLMClient, TextDelta, to_upstream_error
from react_tier.settings import LLMEndpointSettings
from tests.scripted_openai import Reply, ScriptedOpenAI
from tests.support import free_port

MESSAGES = [{"role": "user", "content": "隋朝何时建立？"}]


def test_breaker_opens_fails_fast_then_probes_once():
    now = [0.0]
    breaker = CircuitBreaker("domain", failures=3, reset_s=5, clock=lambda: now[0])
    for _ in range(2):
        breaker.before(), breaker.failure()
    assert breaker.state == "closed"
    breaker.before(), breaker.failure()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError) as err:
        breaker.before()
    assert err.value.status_code == 503 and "circuit open" in str(err.value)
    now[0] = 5.0
    assert breaker.state == "half-open"
    breaker.before()  # the one probe
    with pytest.raises(CircuitOpenError):
        breaker.before()  # a second caller while the probe runs
    breaker.failure()  # the probe failed: open again for reset_s
    assert breaker.state == "open"
    now[0] = 10.0
    breaker.before(), breaker.success()
    assert breaker.state == "closed" and breaker.failures == 0


def test_a_success_resets_the_count_and_a_cancelled_probe_frees_the_slot():
    now = [0.0]
    breaker = CircuitBreaker("agent", failures=2, reset_s=1, clock=lambda: now[0])
    breaker.failure(), breaker.success(), breaker.failure()
    assert breaker.state == "closed"
    breaker.failure()
    now[0] = 1.0
    breaker.before()
    breaker.release()  # cancelled: says nothing about the tier
    breaker.before()  # another probe may go


async def test_dead_upstream_is_detected_within_2_s_then_fails_fast():
    client = LLMClient("domain", LLMEndpointSettings(base_url=f"http://127.0.0.1:{free_port()}", model="m"))
    started = time.perf_counter()
    with pytest.raises(openai.APIConnectionError) as err:
        await client.complete(MESSAGES)
    assert time.perf_counter() - started < 2.0 and to_upstream_error("domain", err.value).status_code == 503
    assert client.breaker.state == "open"  # 1 attempt + 2 retries = 3 faults
    started = time.perf_counter()
    with pytest.raises(CircuitOpenError):
        await client.complete(MESSAGES)
    assert time.perf_counter() - started < 0.05
    await client.aclose()


async def test_a_request_error_does_not_open_the_breaker():
    with ScriptedOpenAI() as server:
        client = LLMClient("agent", LLMEndpointSettings(base_url=server.base_url, model="agent", breaker_failures=1))
        server.script("agent", Reply(status=400))
        with pytest.raises(openai.BadRequestError):
            await client.complete(MESSAGES)
        assert client.breaker.state == "closed"
        server.script("agent", Reply(status=500), Reply(status=500), Reply(status=500))
        with pytest.raises(CircuitOpenError):  # the first 500 opened it: the retry is not even sent
            await client.complete(MESSAGES)
        assert client.breaker.state == "open" and len(server.requests) == 2
        await client.aclose()


async def test_a_hung_stream_is_cut_by_the_idle_timeout():
    with ScriptedOpenAI() as server:
        client = LLMClient("agent", LLMEndpointSettings(base_url=server.base_url, model="agent", timeout_s=30,
                                                        stream_idle_timeout_s=0.5, max_retries=0))
        server.script("agent", Reply(hang=True))
        started = time.perf_counter()
        with pytest.raises(openai.APITimeoutError):
            async for _ in client.stream(MESSAGES):
                pass
        assert time.perf_counter() - started < 2.0
        await client.aclose()


async def test_a_successful_call_is_reported_to_the_breaker():
    """Issue #25, item 5: with the success not reported, faults kept counting across good calls (two isolated
    faults opened a 2-fault breaker) and a half-open probe that succeeded left the tier failing fast."""
    with ScriptedOpenAI() as server:
        settings = LLMEndpointSettings(base_url=server.base_url, model="agent", breaker_failures=2,
                                       max_retries=0)
        client = LLMClient("agent", settings)
        for call in ("complete", "stream"):
            server.script("agent", Reply(status=500), "好")
            with pytest.raises(openai.InternalServerError):
                await client.complete(MESSAGES)
            assert client.breaker.failures == 1
            if call == "complete":
                assert (await client.complete(MESSAGES)).text == "好"
            else:
                assert [d.text async for d in client.stream(MESSAGES) if isinstance(d, TextDelta)] == ["好"]
            assert client.breaker.failures == 0 and client.breaker.state == "closed"
        now = [0.0]
        client.breaker = CircuitBreaker("agent", failures=1, reset_s=5, clock=lambda: now[0])
        client.breaker.failure()
        with pytest.raises(CircuitOpenError):
            await client.complete(MESSAGES)
        now[0] = 5.0
        server.script("agent", "好")
        assert (await client.complete(MESSAGES)).text == "好"  # the half-open probe
        assert client.breaker.state == "closed" and not client.breaker.probing
        await client.aclose()


def test_the_open_state_lasts_exactly_reset_s_and_says_when_the_next_probe_goes():
    now = [100.0]
    breaker = CircuitBreaker("domain", failures=1, reset_s=5, clock=lambda: now[0])
    assert (breaker.tier, breaker.threshold, breaker.reset_s, breaker.failures, breaker.probing) == \
        ("domain", 1, 5, 0, False)
    default = CircuitBreaker("x")
    assert (default.threshold, default.reset_s, default.opened_at, default.state) == (3, 5.0, None, "closed")
    breaker.before()  # closed: no-op
    breaker.failure()
    assert breaker.opened_at == 100.0 and breaker.state == "open"
    now[0] = 101.5
    with pytest.raises(CircuitOpenError) as err:
        breaker.before()
    assert err.value.retry_in_s == 3.5 and str(err.value) == (
        "domain LLM unavailable (circuit open after repeated failures; next probe in 3.5 s)")
    now[0] = 104.999
    assert breaker.state == "open"
    now[0] = 105.0
    assert breaker.state == "half-open"  # at reset_s exactly
    breaker.before()
    assert breaker.probing
    with pytest.raises(CircuitOpenError) as err:
        breaker.before()  # the probe is out: others still fail fast, the next probe is due now
    assert err.value.retry_in_s == 0.0
    breaker.release()
    assert breaker.probing is False and breaker.state == "half-open"


def test_failures_below_the_threshold_keep_it_closed_and_a_failed_probe_reopens_it():
    now = [0.0]
    breaker = CircuitBreaker("agent", failures=3, reset_s=2, clock=lambda: now[0])
    breaker.failure(), breaker.failure()
    assert breaker.state == "closed" and breaker.failures == 2 and breaker.opened_at is None
    breaker.failure()
    assert breaker.state == "open" and breaker.failures == 3
    now[0] = 2.0
    breaker.before()
    now[0] = 3.0
    breaker.failure()  # the probe failed: open again from now, even though the count is irrelevant
    assert breaker.opened_at == 3.0 and not breaker.probing and breaker.state == "open"
    breaker.success()
    assert (breaker.failures, breaker.opened_at, breaker.probing, breaker.state) == (0, None, False, "closed")
