"""A slow Serve app with the ingress's deployment options squeezed to one request in the replica and one in Ray's
queue, for tests/integration/test_ingress_guard_stack.py: what is tested is Ray's own overflow answer (the
proxy's ``backpressure_config`` from ``AgentDeploymentSettings``), not the agent."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from ray import serve

from deployments.config import AdmissionSettings, AgentDeploymentSettings

api = FastAPI()
OPTIONS = AgentDeploymentSettings(autoscaling=None, num_replicas=1, max_queued_requests=1,
                                  num_cpus=0).deployment_options(
    AdmissionSettings(max_in_flight=1, max_queue=0))


@serve.deployment(**OPTIONS)
@serve.ingress(api)
class Slow:
    @api.get("/slow")
    async def slow(self) -> str:
        await asyncio.sleep(3)
        return "done"


app = Slow.bind()
