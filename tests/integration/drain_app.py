"""A streaming Serve app for tests/integration/test_ray_node_drain.py: two replicas, one per node; each response
names the node that serves it (``SUI_TEST_NODE`` of the ``ray start`` that started the node: Ray's workers inherit
the raylet's environment), then one chunk every 0.2 s, then ``end``. Stands in for the ingress: what is tested is
Ray's node drain with the ingress's own deployment options (graceful shutdown, health checks), not the agent."""

from __future__ import annotations

import asyncio
import os

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from ray import serve

from deployments.config import AdmissionSettings, AgentDeploymentSettings

api = FastAPI()


OPTIONS = {**AgentDeploymentSettings(autoscaling=None, num_replicas=2).deployment_options(
    AdmissionSettings(max_in_flight=256, max_queue=0)),
           "max_replicas_per_node": 1}


@serve.deployment(**OPTIONS)
@serve.ingress(api)
class Streamer:
    @api.get("/stream")
    async def stream(self, n: int = 40) -> StreamingResponse:
        node = os.environ.get("SUI_TEST_NODE", "head")

        async def chunks():
            yield f"{node}\n"
            for i in range(n):
                await asyncio.sleep(0.2)
                yield f"{i}\n"
            yield "end\n"

        return StreamingResponse(chunks(), media_type="text/plain")


app = Streamer.bind()
