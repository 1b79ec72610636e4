"""Which agent replica a request goes to: the least-loaded one, not the better of two random ones.

Ray Serve's default router (power of two choices) asks two random replicas for their queue lengths and sends the
request to the shorter. That keeps a fleet of proxies from herding onto one replica, but it leaves queues behind
while other replicas have room: in the H100 step load of 2026-12-07 (benchmarks/results/gpu/2026-12-07/lease2,
256 clients on 8 replicas of 32 run slots each, capacity 256) 12 of 894 requests waited 10 s in a replica's
admission queue (deployments/admission.py) and were refused, 5-20 s after the 8th replica was up. An agent run
holds its slot for ~10 s, so a request placed behind 32 runs waits for one of them to end, where a replica with a
free slot would have started it at once.

:class:`LeastLoadedRouter` offers every replica as one rank; Ray's base class then takes, among the replicas that
accept (queue length < ``max_ongoing_requests``), the one with the lowest queue length: from the router's cache
first (updated on every send and every reply), probing only replicas without a fresh entry. One proxy per node
routes every request of that node, so its cache sees every send; the price is a scan of the replicas per request
(8 here). Chosen by ``agent_deployment.request_router`` (deployments/config.py); ``power_of_two`` is Ray's own.
"""

from __future__ import annotations

from ray.serve.request_router import FIFOMixin, PendingRequest, RequestRouter, RunningReplica


class LeastLoadedRouter(FIFOMixin, RequestRouter):
    """Every candidate replica in one rank: the base class picks the lowest queue length among those that accept."""

    async def choose_replicas(self, candidate_replicas: list[RunningReplica],
                              pending_request: PendingRequest | None = None) -> list[list[RunningReplica]]:
        return [candidate_replicas] if candidate_replicas else []
