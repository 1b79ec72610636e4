"""Issue 28, item 1: the replica router (react_tier/routing.py) — the ring's stability, the bounded load,
failover
— and LLMClient over replicas against real HTTP servers on 127.0.0.1 (ScriptedOpenAI; a dead port)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from pydantic import ValidationError

from react_tier.breaker import CircuitOpenError
from react_tier.llm import LLMClient
from react_tier.routing import RUN_KEY, BoundedLoadRouter, EndpointSet, HashRing, with_host
from react_tier.settings import AgentLLMSettings, LLMEndpointSettings
from tests.scripted_openai import ScriptedOpenAI
from tests.support import free_port

NODES = [f"http://10.0.0.{i}:8001/v1" for i in range(1, 5)]
KEYS = [f"run-{i}" for i in range(4000)]
MESSAGES = [{"role": "user", "content": "隋朝何时建立？"}]


def test_the_ring_spreads_keys_and_moves_only_the_leaving_replicas_keys():
    ring = HashRing(NODES)
    owners = {key: ring.walk(key)[0] for key in KEYS}
    share = Counter(owners.values())
    assert all(0.15 < share[n] / len(KEYS) < 0.35 for n in NODES), share  # ~1/4 each
    assert all(sorted(ring.walk(key)) == sorted(NODES) for key in KEYS[:50])  # every replica once
    smaller = HashRing(NODES[:3])
    moved = [k for k in KEYS if smaller.walk(k)[0] != owners[k]]
    assert moved and all(owners[k] == NODES[3] for k in moved)  # only the runs of the replica that left move
    assert HashRing(list(reversed(NODES))).walk("run-7") == ring.walk("run-7")  # order is irrelevant


def test_a_run_stays_on_its_replica_until_released():
    router = BoundedLoadRouter(NODES)
    first = router.route("run-1")
    for _ in range(5):
        router.route("run-2"), router.route("run-3")
        assert router.route("run-1") == first
    assert router.loads[first] >= 1 and sum(router.loads.values()) == 3
    router.release("run-1"), router.release("run-2"), router.release("run-3")
    assert not router.loads and not router.pins


@pytest.mark.parametrize("factor", [1.0, 1.25, 2.0])
def test_the_load_is_bounded_by_the_balance_factor(factor):
    router = BoundedLoadRouter(NODES[:2], balance_factor=factor)
    keys = [k for k in KEYS if HashRing(NODES[:2]).walk(k)[0] == NODES[0]][:40]  # all hash to one replica
    for key in keys:
        router.route(key)
    mean = len(keys) / 2
    assert max(router.loads.values()) <= -(-factor * len(keys) // 2), router.loads
    assert router.loads[NODES[1]] >= len(keys) - factor * mean - 1  # the overflow went to the next replica


def test_without_bounded_load_pressure_runs_go_to_their_hash_owner():
    router = BoundedLoadRouter(NODES, balance_factor=10.0)
    ring = HashRing(NODES)
    assert all(router.route(k) == ring.walk(k)[0] for k in KEYS[:20])


def test_failover_skips_an_unusable_replica_and_repins_the_run():
    router = BoundedLoadRouter(NODES)
    home = router.route("run-9")
    moved = router.route("run-9", usable=lambda n: n != home)
    assert moved != home and moved == HashRing(NODES).walk("run-9")[1]
    assert router.route("run-9") == moved  # the run stays on the replica it moved to
    assert router.loads[home] == 0 and router.loads[moved] == 1
    assert router.route("run-9", usable=lambda n: False) is None


def test_a_replica_that_leaves_releases_its_runs_and_round_robin_cycles():
    router = BoundedLoadRouter(NODES)
    keys = KEYS[:20]
    before = {k: router.route(k) for k in keys}
    router.set_nodes(NODES[:3])
    assert all(router.pinned(k) == before[k] for k in keys if before[k] != NODES[3])
    assert all(router.pinned(k) is None for k in keys if before[k] == NODES[3])
    assert sum(router.loads.values()) == sum(1 for k in keys if before[k] != NODES[3])
    rr = BoundedLoadRouter(NODES, policy="round_robin")
    assert [rr.route("same-run") for _ in range(8)] == NODES * 2 and not rr.pins
    with pytest.raises(ValueError):
        BoundedLoadRouter(NODES, balance_factor=0.5)


def test_settings_keep_a_single_url_and_refuse_contradictions():
    single = AgentLLMSettings()
    assert single.replicas == [] and single.routing == "run_affine" and not single.resolve_dns
    listed = AgentLLMSettings(replicas=["http://a:8001", "http://b:8001/v1"])
    assert listed.replicas == ["http://a:8001/v1", "http://b:8001/v1"]
    with pytest.raises(ValidationError, match="twice"):
        AgentLLMSettings(replicas=["http://a:8001", "http://a:8001/v1"])
    with pytest.raises(ValidationError, match="exclude each other"):
        AgentLLMSettings(replicas=["http://a:8001"], resolve_dns=True)
    with pytest.raises(ValidationError, match="http"):
        AgentLLMSettings(replicas=["a:8001"])


async def test_dns_names_become_replicas_and_a_failed_lookup_keeps_the_last_list():
    now = [0.0]
    endpoints = EndpointSet("http://localhost:8001/v1", [], resolve_dns=True, refresh_s=10,
                            clock=lambda: now[0])
    urls = await endpoints.current()
    assert "http://127.0.0.1:8001/v1" in urls and all(u.endswith(":8001/v1") for u in urls)
    endpoints.base_url = "http://no-such-host.invalid:8001/v1"
    assert await endpoints.current() == urls  # not stale yet: no lookup
    now[0] = 11.0
    assert await endpoints.current() == urls  # the lookup failed: the last good list stays
    assert with_host("http://svc:8001/v1", "fd00::1") == "http://[fd00::1]:8001/v1"
    assert await EndpointSet("http://x:1/v1", ["http://a:1/v1"]).current() == ["http://a:1/v1"]


async def _complete_as(client: LLMClient, key: str) -> None:
    token = RUN_KEY.set(key)
    try:
        await client.complete(MESSAGES)
    finally:
        RUN_KEY.reset(token)


async def test_the_client_pins_each_run_to_one_real_replica():
    with ScriptedOpenAI() as a, ScriptedOpenAI() as b:
        settings = LLMEndpointSettings(base_url=a.base_url, replicas=[a.base_url, b.base_url], model="agent",
                                       balance_factor=10)
        client = LLMClient("agent", settings)
        # 4 runs whose hash owner is each replica: the servers' ports are ephemeral, so the ring differs per test
        # run, and 8 fixed keys all fell on one replica in ~1 run of 128 (mutmut's clean run, 2026-12-07)
        by_owner: dict[str, list[str]] = {}
        for i in range(1000):
            by_owner.setdefault(client.router.ring.walk(f"run-{i}")[0], []).append(f"run-{i}")
        runs = [key for url in client.router.nodes for key in by_owner[url][:4]]
        for server in (a, b):
            server.script("agent", *["好"] * 24)
        for _ in range(3):
            await asyncio.gather(*(_complete_as(client, key) for key in runs))
        assert len(a.requests) + len(b.requests) == 24 and a.requests and b.requests
        on_a = sum(1 for key in runs if client.router.pinned(key).startswith(a.base_url))
        # 3 calls per run, all on its replica
        assert (len(a.requests), len(b.requests)) == (3 * on_a, 3 * (len(runs) - on_a))
        on_b = next(key for key in runs if client.router.pinned(key).startswith(b.base_url))
        token = RUN_KEY.set(on_b)
        try:  # the run's own /tokenize goes to its replica too, not to the first one
            assert client.current_url().startswith(b.base_url) and client.router.nodes[0] != client.current_url()
        finally:
            RUN_KEY.reset(token)
        for key in runs:
            client.release_run(key)
        assert not client.router.loads
        await client.aclose()


def _dead_and_live(live: ScriptedOpenAI, **settings) -> tuple[str, LLMClient, list[str]]:
    """An agent-tier client over a dead replica (nothing listens on its port) and ``live``, and the keys the
    dead one owns on the ring."""
    dead = f"http://127.0.0.1:{free_port()}/v1"
    client = LLMClient("agent", LLMEndpointSettings(base_url=dead, replicas=[dead, live.base_url], model="agent",
                                                    **settings))
    return dead, client, [k for k in KEYS if HashRing([dead, live.base_url]).walk(k)[0] == dead]


async def test_a_dead_replica_fails_over_then_fails_fast_by_its_own_breaker():
    with ScriptedOpenAI() as live:
        dead, client, keys = _dead_and_live(live, breaker_failures=1, max_retries=2)
        live.script("agent", "好", "好", "好")
        await _complete_as(client, keys[0])  # the first attempt hit the dead replica, the retry the live one
        assert client.breaker_for(dead).state == "open" and client.router.pinned(keys[0]) == live.base_url
        await _complete_as(client, keys[1])  # the dead replica is skipped without an attempt
        assert len(live.requests) == 2 and client.breaker_for(live.base_url).state == "closed"
    with pytest.raises(CircuitOpenError, match="agent replica"):  # both down: fail fast, named per replica
        for _ in range(3):
            await _complete_as(client, keys[2])
    await client.aclose()


async def test_a_retry_goes_to_another_replica_while_the_failed_ones_breaker_is_still_closed():
    """One fault does not open a breaker of 5, yet the call's retry leaves the replica that just failed."""
    with ScriptedOpenAI() as live:
        dead, client, (key, *_) = _dead_and_live(live, breaker_failures=5, max_retries=1)
        live.script("agent", "好")
        await _complete_as(client, key)
        assert client.breaker_for(dead).state == "closed" and len(live.requests) == 1
        await client.aclose()


async def test_readiness_holds_while_one_replica_answers():
    with ScriptedOpenAI() as live:
        dead, client, _ = _dead_and_live(live)
        live.script("agent", "好")
        assert await client.ready()
        await client.aclose()
    only_dead = LLMClient("agent", LLMEndpointSettings(base_url=dead, model="agent"))
    assert not await only_dead.ready()
    await only_dead.aclose()


async def test_a_dns_refresh_moves_calls_to_the_new_pods_and_forgets_the_old_ones():
    with ScriptedOpenAI() as server:
        settings = LLMEndpointSettings(base_url=server.base_url, model="agent", resolve_dns=True,
                                       dns_refresh_s=3600)
        client = LLMClient("agent", settings)
        client.endpoints.urls, client.endpoints._resolved_at = ["http://10.9.9.9:1/v1"], 0.0
        client.endpoints.clock = lambda: 1.0  # the "old pod" list is fresh: no lookup yet
        client.breaker_for("http://10.9.9.9:1/v1").failure()
        await client._pick(set())
        assert client.router.nodes == ("http://10.9.9.9:1/v1",)
        client.endpoints.clock = lambda: 7200.0  # stale: 127.0.0.1 is looked up, the old pod is gone
        server.script("agent", "好")
        assert (await client.complete(MESSAGES)).text == "好"
        assert client.router.nodes == (server.base_url,) and set(client._breakers) == {server.base_url}
        await client.aclose()


def test_runs_never_released_cannot_grow_the_pins_forever(monkeypatch):
    import react_tier.routing as routing

    monkeypatch.setattr(routing, "MAX_PINS", 10)
    router = BoundedLoadRouter(NODES)
    for key in KEYS[:25]:
        router.route(key)
    assert len(router.pins) == 10 and sum(router.loads.values()) == 10
    assert list(router.pins) == KEYS[15:25]  # the oldest went first


async def test_when_every_usable_replica_failed_this_call_the_retry_goes_to_a_ready_one():
    """The second choice of ``_pick``: the replicas left are the open one and the one that just failed; the retry
    goes to the one whose breaker is still closed, never to the open one (nor blindly to the first)."""
    a, b = f"http://127.0.0.1:{free_port()}/v1", f"http://127.0.0.1:{free_port()}/v1"
    client = LLMClient("agent", LLMEndpointSettings(base_url=a, replicas=[a, b], model="agent", breaker_failures=1))
    client.breaker_for(a).failure()
    assert client.breaker_for(a).state == "open"
    owned_by_a = [k for k in KEYS if HashRing([a, b]).walk(k)[0] == a][:3]
    assert owned_by_a
    for key in owned_by_a:
        token = RUN_KEY.set(key)
        try:
            assert await client._pick({b}) == b
        finally:
            RUN_KEY.reset(token)
    await client.aclose()
