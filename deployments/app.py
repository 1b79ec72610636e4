"""The Ray Serve application: one autoscaled deployment whose replicas each run the OpenAI-compatible ingress
(FastAPI via ``serve.ingress``) and a react_tier ``ReActAgent``. Build it with :func:`build_app`; ``serve deploy``
uses :func:`app_builder`.

Why one deployment and not ingress -> handle -> agent: an agent run is I/O-bound (it waits on the LLM tiers), so
the replica that parses HTTP can run it too; a second hop cost ~+20 ms p50 per request on a 2-core machine
(benchmarks/results/overhead) and a Serve round trip per streamed event. Autoscaling on ongoing requests scales
HTTP handling and agent runs together.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve
from ray.serve import Application

from deployments.config import ApiSettings


@serve.deployment(name="SuiReAct")
@serve.ingress()  # the app is built per replica, around this replica's handler (__serve_build_asgi_app__)
class SuiReActDeployment:
    def __init__(self, api_settings: dict[str, Any]):
        from deployments.auth import KeyRing, require_keys
        from deployments.metrics import ApiMetrics, PrometheusAgentHooks
        from deployments.serving_chat import OpenAIServingChat
        from react_tier import ReActAgent

        settings = ApiSettings.model_validate(api_settings)
        self.keys = require_keys(settings, KeyRing.from_settings(settings))
        self.agent = ReActAgent.from_settings(settings.agent, hooks=[PrometheusAgentHooks()])
        self.chat = OpenAIServingChat(settings, self.agent, ApiMetrics())
        # Load the knowledge base now (off the event loop) rather than on this replica's first request.
        self._warm_up = asyncio.get_running_loop().create_task(self.agent.load_knowledge())

    def __serve_build_asgi_app__(self):
        from deployments.api_router import create_app

        self._asgi = create_app(self.chat, echo_request_id=False, keys=self.keys)  # the proxy echoes X-Request-Id
        return self._asgi

    async def check_health(self) -> None:
        """Serve's replica health check: the replica's event loop answers (upstream health is /ready's job)."""

    async def __del__(self):
        gate = getattr(getattr(getattr(self, "_asgi", None), "state", None), "gate", None)
        if gate is not None:  # Serve has waited for in-flight requests (graceful_shutdown_timeout_s)
            gate.drain()
        agent = getattr(self, "agent", None)  # absent when the constructor failed
        if agent is not None:
            await agent.aclose()


def build_app(settings: ApiSettings) -> Application:
    from deployments.auth import KeyRing, require_keys

    require_keys(settings, KeyRing.from_settings(settings))  # fail here, not in every replica's constructor
    options = settings.agent_deployment.deployment_options()
    # python mode keeps secrets as SecretStr (pickled by Ray) instead of masking them
    return SuiReActDeployment.options(**options).bind(settings.model_dump())


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point for ``serve run deployments.app:app_builder`` / a ``serve deploy`` YAML. ``args`` are the YAML
    layer of the settings: the environment (SUIQA_API_*, SUIQA_REACT_*, SUIQA_KB_*) overrides them."""
    return build_app(ApiSettings.load(base=args))
