"""The ingress guard without Ray: API keys (401, constant-time compare, never logged), per-key limits (429 +
Retry-After), admission control (bounded in-flight + queue, immediate 429), body-size cap (413 unread), drain
(503 + not ready), and that /health never waits. The agent is tests/unit/deployments/helpers.ContractAgent."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from deployments.admission import Admission, Gate, Shed
from deployments.api_router import create_app
from deployments.auth import KeyLimiter, KeyRing, TokenBucket, bearer_token, parse_keys, require_keys
from deployments.config import ApiSettings
from deployments.serving_chat import OpenAIServingChat
from suiqa.errors import SuiqaError
from tests.unit.deployments.helpers import ContractAgent

URL = "/v1/chat/completions"
BODY = {"model": "sui-react", "messages": [{"role": "user", "content": "隋朝何时建立？"}]}
KEY = "sk-alice-0123456789abcdef"
KEYS = f"alice:{KEY},bob:sk-bob-0123456789abcdef"


def app_for(agent=None, keys: str | None = KEYS, **settings):
    settings = ApiSettings.load(**settings)
    return create_app(OpenAIServingChat(settings, agent or ContractAgent()),
                      keys=KeyRing(parse_keys(keys or "")))


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- keys -------------------------------------------------------------------------------------------------------

def test_parse_keys_ids_bare_keys_comments_and_errors():
    keys = parse_keys("# ops keys\nalice:sk-aaaaaaaaaaaaaaaa, sk-bbbbbbbbbbbbbbbb\n\n")
    assert keys[0].id == "alice" and keys[1].id.startswith("key-") and len(keys[1].id) == 12
    assert "sk-a" not in repr(keys)  # the key is not in the repr (nor in logs that print it)
    with pytest.raises(SuiqaError, match="16 characters"):
        parse_keys("alice:short")
    with pytest.raises(SuiqaError, match="twice"):
        parse_keys("a:sk-aaaaaaaaaaaaaaaa,a:sk-cccccccccccccccc")


def test_parse_keys_edges():
    # empty entries are skipped; the first colon ends the id
    keys = parse_keys("a:sk-aaaaaaaaaaaaaaaa,,b:sk-bbbbbbbbbbbbbbbb, ,c:sk:with:colons:123")
    assert [(k.id, k.secret) for k in keys] == [("a", b"sk-aaaaaaaaaaaaaaaa"), ("b", b"sk-bbbbbbbbbbbbbbbb"),
                                                ("c", b"sk:with:colons:123")]
    assert parse_keys(" d : 0123456789abcdef ")[0].secret == b"0123456789abcdef"  # 16 characters: enough
    with pytest.raises(SuiqaError) as short:
        parse_keys("e:0123456789abcde")  # 15
    assert str(short.value) == "API key 'e': keys need an id and at least 16 characters"
    with pytest.raises(SuiqaError) as no_id:
        parse_keys(":0123456789abcdef")
    assert str(no_id.value) == "API key '?': keys need an id and at least 16 characters"
    with pytest.raises(SuiqaError, match="^API key id 'y' or its key is listed twice$"):
        parse_keys("x:0123456789abcdef,y:0123456789abcdef")  # the same key under two ids


def test_identify_compares_every_key_in_constant_time(monkeypatch):
    import hmac

    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    ring = KeyRing(parse_keys(KEYS))
    assert ring.identify(KEY) == "alice" and len(calls) == 2  # no early exit on the first match
    assert ring.identify("sk-alice-0123456789abcdeX") is None and ring.identify(None) is None
    assert bearer_token([(b"authorization", b"bearer abc")]) == "abc"
    assert bearer_token([(b"authorization", b"Basic abc")]) is None


def test_keys_from_env_and_secret_file(tmp_path, monkeypatch):
    secret = tmp_path / "keys"
    secret.write_text("carol:sk-carol-0123456789abcdef\n")
    monkeypatch.setenv("SUIQA_API_API_KEYS", KEYS)
    monkeypatch.setenv("SUIQA_API_API_KEYS_FILE", str(secret))
    ring = KeyRing.from_settings(ApiSettings.load())
    assert [k.id for k in ring.keys] == ["alice", "bob", "carol"]
    monkeypatch.setenv("SUIQA_API_API_KEYS_FILE", str(tmp_path / "missing"))
    with pytest.raises(SuiqaError, match="cannot read the API key file"):
        KeyRing.from_settings(ApiSettings.load())


def test_non_demo_profiles_refuse_to_start_without_keys():
    from deployments.config import PROFILES_DIR

    for name in ("api-gpu", "api-gpu-bench"):
        settings = ApiSettings.load(PROFILES_DIR / f"{name}.yaml")
        with pytest.raises(SuiqaError) as refused:
            require_keys(settings, KeyRing.from_settings(settings))
        assert str(refused.value) == (
            "this API profile requires API keys: set SUIQA_API_API_KEYS='id:key,...' or "
            "SUIQA_API_API_KEYS_FILE=/path/to/secret (or require_api_keys: false for an open demo)")
    demo = ApiSettings.load(PROFILES_DIR / "api-cpu-tiny.yaml")
    assert not demo.require_api_keys and not require_keys(demo, KeyRing([]))


@pytest.mark.parametrize("headers", [{}, auth("sk-wrong-0123456789abcdef"), {"Authorization": f"Basic {KEY}"}])
def test_missing_or_wrong_key_is_401_before_any_work(headers, caplog):
    agent = ContractAgent()
    client = TestClient(app_for(agent))
    with caplog.at_level(logging.DEBUG):
        resp = client.post(URL, json=BODY, headers=headers)
        models = client.get("/v1/models", headers=headers)
    assert resp.status_code == 401 and models.status_code == 401
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error" or error["code"] == 401
    assert resp.headers["www-authenticate"] == "Bearer" and len(resp.headers.get_list("x-request-id")) == 1
    assert agent.requests == []  # refused before the agent saw it
    assert KEY not in caplog.text and "sk-wrong" not in caplog.text


def test_right_key_is_200_and_its_id_reaches_request_state():
    app = app_for()
    seen = {}

    @app.middleware("http")  # outermost: reads the state the guard set for logs/metrics
    async def spy(request, call_next):
        response = await call_next(request)
        seen[request.url.path] = request.state.context.api_key_id  # the one request context
        return response

    client = TestClient(app)
    assert client.post(URL, json=BODY, headers=auth()).status_code == 200
    assert client.get("/v1/models", headers=auth()).status_code == 200
    assert client.get("/health").status_code == 200 and client.get("/ready").status_code == 200  # probes: no key
    assert seen == {URL: "alice", "/v1/models": "alice", "/health": None, "/ready": None}


def test_open_demo_api_needs_no_key():
    assert TestClient(app_for(keys=None)).post(URL, json=BODY).status_code == 200


# --- per-key limits -----------------------------------------------------------------------------------------------

def test_token_bucket_refills_at_its_rate():
    now = [0.0]
    bucket = TokenBucket(rate_per_s=2, burst=2, clock=lambda: now[0])
    assert bucket.take() == 0 and bucket.take() == 0
    assert bucket.take() == pytest.approx(0.5)
    now[0] = 0.5
    assert bucket.take() == 0


def test_token_bucket_counts_refill_from_its_last_take():
    """Issue #25, item 5: a bucket that never advanced its timestamp counted the refill from its creation
    again at every take, so a key at its rate got a token back on every request after the first refill."""
    now = [0.0]
    bucket = TokenBucket(rate_per_s=1, burst=2, clock=lambda: now[0])
    assert [bucket.take(), bucket.take()] == [0, 0]
    now[0] = 1.0
    assert bucket.take() == 0  # one token refilled in 1 s
    assert bucket.take() == pytest.approx(1.0) and bucket.take() == pytest.approx(1.0)  # not again
    now[0] = 1.5
    assert bucket.take() == pytest.approx(0.5)
    now[0] = 10.0
    assert [bucket.take(), bucket.take(), bucket.take() > 0] == [0, 0, True]  # refill stops at the burst


def test_key_limiter_concurrency_and_rate_are_per_key():
    now = [0.0]
    limiter = KeyLimiter(concurrency=2, rpm=60, burst=3, clock=lambda: now[0])
    assert limiter.acquire("a") is None and limiter.acquire("a") is None
    refusal = limiter.acquire("a")
    assert refusal and "concurrent" in refusal.reason and refusal.retry_after_s >= 1
    assert limiter.acquire("b") is None  # another key is not affected
    limiter.release("a")
    assert limiter.acquire("a") is None  # third token of the burst
    limiter.release("a"), limiter.release("a")
    refusal = limiter.acquire("a")
    assert refusal.reason == "rate limit for this API key reached (60 requests/min)"
    assert refusal.retry_after_s == 1
    now[0] = 1.0
    assert limiter.acquire("a") is None


def test_rate_limit_is_429_with_retry_after():
    client = TestClient(app_for(admission={"per_key_rpm": 1, "per_key_burst": 2}))
    codes = [client.post(URL, json=BODY, headers=auth()).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    resp = client.post(URL, json=BODY, headers=auth())
    assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
    assert resp.json()["error"]["code"] == 429 and "rate limit" in resp.json()["error"]["message"]
    assert client.post(URL, json=BODY, headers=auth("sk-bob-0123456789abcdef")).status_code == 200


# --- body size ----------------------------------------------------------------------------------------------------

def test_body_over_the_cap_is_413_unread():
    agent = ContractAgent()
    client = TestClient(app_for(agent, admission={"max_body_bytes": 2048}))
    big = {**BODY, "messages": [{"role": "user", "content": "隋" * 3000}]}
    resp = client.post(URL, json=big, headers=auth())
    assert resp.status_code == 413 and resp.json()["error"]["code"] == 413 and agent.requests == []

    def chunks():  # no Content-Length: counted while read
        for _ in range(10):
            yield b" " * 1000

    resp = client.post(URL, content=chunks(), headers={**auth(), "Content-Type": "application/json"})
    assert resp.status_code == 413


# --- admission ----------------------------------------------------------------------------------------------------

async def test_admission_bounds_in_flight_and_queue_and_sheds_at_once():
    admission = Admission(max_in_flight=2, max_queue=1, queue_timeout_s=0.3, retry_after_s=3)
    first, _ = await admission.enter(), await admission.enter()
    waiter = asyncio.ensure_future(admission.enter())
    await asyncio.sleep(0.01)
    assert admission.waiting == 1
    started = time.perf_counter()
    with pytest.raises(Shed) as shed:
        await admission.enter()
    assert time.perf_counter() - started < 0.05 and shed.value.retry_after_s == 3  # no wait at all
    admission.leave(first)
    await waiter  # the queued request got the freed slot
    assert admission.in_flight == 2 and admission.waiting == 0
    with pytest.raises(Shed, match="no capacity within"):
        await admission.enter()  # waits queue_timeout_s, then refused


def test_expected_wait_with_free_slots_and_in_later_rounds():
    now = [0.0]
    admission = Admission(max_in_flight=2, max_queue=8, queue_timeout_s=5, retry_after_s=2,
                          clock=lambda: now[0])
    admission.mean_run_s = 10.0
    admission._running = {0: 0.0}  # one run, one slot free
    now[0] = 4.0
    assert admission.expected_wait_s(1) == 6.0  # the running one's slot
    assert admission.expected_wait_s(2) == 0.0  # the free slot
    assert admission.expected_wait_s(3) == 16.0 and admission.expected_wait_s(4) == 10.0  # one round later
    admission._running = {0: 0.0, 1: 3.0}
    now[0] = 20.0
    assert admission.expected_wait_s(1) == 0.0  # overdue runs: no negative wait


async def test_each_refusal_is_counted():
    admission = Admission(max_in_flight=1, max_queue=0, queue_timeout_s=1, retry_after_s=4)
    await admission.enter()
    for expected in (1, 2, 3):
        full = r"^the API is at capacity \(1 running, 0 waiting\); retry later$"
        with pytest.raises(Shed, match=full) as shed:
            await admission.enter()
        assert admission.shed == expected and shed.value.retry_after_s == 4


def test_the_gate_takes_every_admission_setting():
    settings = ApiSettings.load(admission={
        "max_in_flight": 3, "max_queue": 5, "queue_timeout_s": 7, "retry_after_s": 9, "max_body_bytes": 4096,
        "per_key_concurrency": 2, "per_key_rpm": 30, "per_key_burst": 6})
    gate = Gate(settings, KeyRing([]))
    a = gate.admission
    assert (a.max_in_flight, a.max_queue, a.queue_timeout_s, a.retry_after_s) == (3, 5, 7, 9)
    limiter = gate.limiter
    assert (limiter.concurrency, limiter.rate, limiter.burst) == (2, 0.5, 6)
    assert (gate.max_body, gate.retry_after_s, gate.draining, bool(gate.keys)) == (4096, 9, False, False)


async def test_admission_refuses_at_once_a_request_that_would_wait_past_the_queue_timeout():
    """Runs of 10 s, 2 slots, a 5 s queue timeout: while both slots have 9 s to go, a new request would only time
    out in the queue, so it is refused at once (the queue has room); once a slot is 4 s from free it may wait."""
    now = [0.0]
    admission = Admission(max_in_flight=2, max_queue=8, queue_timeout_s=5, retry_after_s=2, clock=lambda: now[0])
    assert admission.expected_wait_s(1) is None  # no run finished yet: the static bounds only
    ticket = await admission.enter()
    now[0] = 10.0
    admission.leave(ticket)
    assert admission.mean_run_s == 10.0
    a, b = await admission.enter(), await admission.enter()  # both start at t = 10
    now[0] = 11.0
    assert admission.expected_wait_s(1) == 9.0 and admission.expected_wait_s(3) == 19.0  # 2nd round: + 10 s
    started = time.perf_counter()
    with pytest.raises(Shed, match=r"a run slot expected in 9 s, more than 5 s") as shed:
        await admission.enter()
    assert time.perf_counter() - started < 0.05 and shed.value.retry_after_s == 2 and admission.waiting == 0
    assert admission.shed == 1
    now[0] = 16.0  # 4 s left on the oldest run: worth the wait
    waiter = asyncio.ensure_future(admission.enter())
    await asyncio.sleep(0.01)
    assert admission.waiting == 1 and admission.expected_wait_s(2) == 4.0  # the next one waits for the 2nd slot
    now[0] = 20.0
    admission.leave(a)  # a 10 s run: the mean stays 10 s
    assert await waiter == 3 and admission.mean_run_s == 10.0
    now[0] = 25.0
    admission.leave(b)  # a 15 s run moves the mean by the EWMA weight: 10 + 0.2 * 5
    assert admission.mean_run_s == 11.0 and admission.in_flight == 1


async def _post(app, headers=None) -> int:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        return (await client.post(URL, json=BODY, headers=headers or {})).status_code


class Escaped(BaseException):
    """Leaves the app like a cancellation (a client that went away) does: the route's handler catches
    Exception."""


class BrokenChat(OpenAIServingChat):
    async def create(self, request, request_id):
        raise Escaped


@pytest.mark.parametrize("keys", [None, KEYS])
async def test_a_run_slot_and_the_keys_place_come_back_when_the_app_raises(keys):
    """Issue #25, item 5: without try/finally around the app, a request whose handling raised (a client
    that disconnects cancels it) kept its run slot and its key's place for ever: after max_in_flight of
    them, 429s."""
    settings = ApiSettings.load(admission={"max_in_flight": 1, "max_queue": 0, "per_key_concurrency": 1})
    app = create_app(BrokenChat(settings, ContractAgent()), keys=KeyRing(parse_keys(keys or "")))
    gate = app.state.gate
    for _ in range(3):
        with pytest.raises(Escaped):
            await _post(app, auth())
        assert gate.admission.in_flight == 0 and gate.limiter.in_flight == {}
    app.state.chat = OpenAIServingChat(settings, ContractAgent())
    assert await _post(app, auth()) == 200


class SlowAgent(ContractAgent):
    """Holds every run until ``release`` is set."""

    def __init__(self):
        super().__init__()
        self.release = asyncio.Event()

    async def stream(self, request):
        await self.release.wait()
        async for event in super().stream(request):
            yield event


async def test_overload_sheds_the_excess_fast_while_admitted_requests_and_health_succeed():
    agent = SlowAgent()
    app = app_for(agent, keys=None, admission={"max_in_flight": 2, "max_queue": 2, "queue_timeout_s": 5})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        async def timed(coro):
            started = time.perf_counter()
            resp = await coro
            return resp, time.perf_counter() - started

        tasks = [asyncio.ensure_future(timed(client.post(URL, json=BODY))) for _ in range(10)]
        await asyncio.sleep(0.2)
        health, health_s = await timed(client.get("/health"))
        assert health.status_code == 200 and health_s < 0.25  # 100 ms on the real stack; slack for a busy CI box
        agent.release.set()
        results = await asyncio.gather(*tasks)
    codes = sorted(r.status_code for r, _ in results)
    assert codes == [200] * 4 + [429] * 6
    for resp, elapsed in results:
        if resp.status_code == 429:
            assert elapsed < 0.25 and resp.headers["retry-after"] == "2"


# --- drain --------------------------------------------------------------------------------------------------------

def test_drain_refuses_new_requests_and_is_not_ready():
    app = app_for(keys=None)
    client = TestClient(app)
    assert client.get("/ready").status_code == 200
    app.state.gate.drain()
    resp = client.post(URL, json=BODY)
    assert resp.status_code == 503 and resp.headers["retry-after"] and resp.json()["error"]["code"] == 503
    assert client.get("/ready").status_code == 503 and client.get("/health").status_code == 200
    assert resp.json()["error"]["message"] == "the API is shutting down; retry later"


def test_rays_cap_per_replica_is_the_admission_capacity_unless_set():
    assert ApiSettings.load(admission={"max_in_flight": 20, "max_queue": 12}).deployment_options()[
        "max_ongoing_requests"] == 32
    options = ApiSettings.load(agent_deployment={"max_ongoing_requests": 64, "max_queued_requests": -1}
                               ).deployment_options()
    assert (options["max_ongoing_requests"], options["max_queued_requests"]) == (64, -1)
    assert ApiSettings.load(agent_deployment={"max_queued_requests": 1}).deployment_options()[
        "max_queued_requests"] == 1
    with pytest.raises(ValueError, match="-1 \\(unbounded\\) or at least 1"):  # what Ray accepts
        ApiSettings.load(agent_deployment={"max_queued_requests": 0})
    with pytest.raises(ValueError, match="route_prefix must be '/'"):  # the front door answers /health at /
        ApiSettings.load(route_prefix="/api")


def test_an_open_api_has_no_per_key_limits_only_admission():
    client = TestClient(app_for(keys=None, admission={"per_key_rpm": 1, "per_key_burst": 1}))
    assert [client.post(URL, json=BODY).status_code for _ in range(3)] == [200, 200, 200]


def test_agent_tier_down_is_503_with_retry_after_and_backpressure_is_429():
    from ray.serve.exceptions import BackPressureError

    from deployments.errors import classify_exception
    from react_tier.breaker import CircuitOpenError

    agent = ContractAgent(fail=CircuitOpenError("agent", 4.0), fail_after=0)
    resp = TestClient(app_for(agent, keys=None)).post(URL, json=BODY)
    assert resp.status_code == 503 and resp.headers["retry-after"] == "2"
    assert "circuit open" in resp.json()["error"]["message"]
    err = classify_exception(BackPressureError(num_queued_requests=10, max_queued_requests=10))
    assert err.status == 429
