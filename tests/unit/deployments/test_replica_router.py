"""deployments/replica_router.py against Ray Serve's own router base class: the least-loaded replica is chosen from
the proxy's queue-length cache, where Ray's default picks the shorter of two random replicas; and the setting puts
the router into the deployment options that Ray's schema accepts."""

from __future__ import annotations

import asyncio

import pytest
from ray.serve._private.common import DeploymentHandleSource, DeploymentID, ReplicaID, RunningReplicaInfo
from ray.serve._private.request_router.pow_2_router import PowerOfTwoChoicesRequestRouter
from ray.serve.request_router import RunningReplica

from deployments.config import LEAST_LOADED_ROUTER, ApiSettings
from deployments.replica_router import LeastLoadedRouter
from deployments.serve_config import serve_config

QUEUE_LENS = [40, 33, 55, 31, 45, 36, 34, 39]  # 8 replicas of 56 places; r3 has a free run slot (31 < 32)


def _routed(router_class, monkeypatch, tries: int) -> list[str]:
    """The replica Ray's base class picks for ``tries`` requests, with the queue lengths in the proxy's cache."""
    monkeypatch.setattr(RunningReplicaInfo, "get_actor_handle", lambda self: None)  # no Ray cluster: nothing is sent

    async def route() -> list[str]:
        dep = DeploymentID(name="SuiReAct", app_name="sui")
        router = router_class(deployment_id=dep, handle_source=DeploymentHandleSource.UNKNOWN,
                              use_replica_queue_len_cache=True)
        replicas = [RunningReplica(RunningReplicaInfo(
            replica_id=ReplicaID(unique_id=f"r{i}", deployment_id=dep), node_id=None, node_ip=None,
            availability_zone=None, actor_name=f"replica-{i}", max_ongoing_requests=56)) for i in range(8)]
        router.update_replicas(replicas)
        chosen = []
        for _ in range(tries):
            for replica, queue_len in zip(replicas, QUEUE_LENS):  # as the replicas last reported
                router._replica_queue_len_cache.update(replica.replica_id, queue_len)
            ranks = await router.choose_replicas(router._replicas_list)
            replica = await router._select_from_candidate_replicas(ranks[0], 0)
            chosen.append(replica.replica_id.unique_id)
        return chosen

    return asyncio.run(route())


def test_least_loaded_takes_the_shortest_queue_every_time(monkeypatch):
    assert _routed(LeastLoadedRouter, monkeypatch, 40) == ["r3"] * 40


def test_rays_default_queues_behind_runs_while_a_replica_has_a_free_slot(monkeypatch):
    """The contrast the router exists for: two random replicas, so most requests miss r3 (P(r3) = 1/4 a try)."""
    chosen = _routed(PowerOfTwoChoicesRequestRouter, monkeypatch, 40)
    assert len(set(chosen)) > 1 and chosen.count("r3") < 30


def test_an_empty_fleet_offers_no_rank():
    router = LeastLoadedRouter.__new__(LeastLoadedRouter)
    assert asyncio.run(router.choose_replicas([])) == []


@pytest.mark.parametrize(("router", "expected"), [("least_loaded", {"request_router_class": LEAST_LOADED_ROUTER}),
                                                   ("power_of_two", None)])
def test_the_setting_reaches_the_deployment_ray_validates(router, expected):
    settings = ApiSettings.load(agent_deployment={"request_router": router})
    assert settings.deployment_options().get("request_router_config") == expected
    deployment = serve_config(settings)["applications"][0]["deployments"][0]  # Ray's ServeDeploySchema inside
    assert deployment.get("request_router_config") == expected
    module, _, name = LEAST_LOADED_ROUTER.partition(":")
    assert getattr(__import__(module, fromlist=[name]), name) is LeastLoadedRouter
