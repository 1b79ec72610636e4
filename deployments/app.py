"""The Ray Serve application: an OpenAI-compatible ingress (FastAPI via ``serve.ingress``) in front of the
autoscaled ReAct agent deployment. Build it with :func:`build_app`; ``serve deploy`` uses :func:`app_builder`."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from deployments.api_router import create_app, install_handler
from deployments.config import ApiSettings

api = create_app()


@serve.deployment(name="ReActAgent")
class ReActAgentDeployment:
    """Hosts one react_tier ReActAgent per replica; the replicas scale with in-flight agent runs."""

    def __init__(self, agent_settings: dict[str, Any]):
        from deployments.metrics import PrometheusAgentHooks
        from react_tier import AgentSettings, ReActAgent

        self.agent = ReActAgent.from_settings(AgentSettings.model_validate(agent_settings),
                                              hooks=[PrometheusAgentHooks()])

    async def run(self, question: str, request_id: str, history: list[dict[str, str]]) -> dict[str, Any]:
        result = await self.agent.run(question, request_id=request_id, history=history)
        return result.model_dump(mode="json")

    async def stream(self, question: str, request_id: str, history: list[dict[str, str]]):
        async for event in self.agent.stream(question, request_id=request_id, history=history):
            yield event.model_dump(mode="json")

    async def ready(self) -> dict[str, bool]:
        return await self.agent.check_upstreams()

    async def __del__(self):
        agent = getattr(self, "agent", None)  # absent when the constructor failed
        if agent is not None:
            await agent.aclose()


@serve.deployment(name="OpenAIIngress")
@serve.ingress(api)
class OpenAIIngress:
    def __init__(self, agent: DeploymentHandle, api_settings: dict[str, Any]):
        from deployments.metrics import ApiMetrics
        from deployments.serving_chat import OpenAIServingChat

        install_handler(OpenAIServingChat(ApiSettings.model_validate(api_settings), agent, ApiMetrics()))


def build_app(settings: ApiSettings) -> Application:
    agent = ReActAgentDeployment.options(**settings.agent_deployment.deployment_options()).bind(
        settings.agent.model_dump())  # python mode: secrets stay SecretStr (pickled by Ray), not masked
    ingress = OpenAIIngress.options(num_replicas=settings.ingress_num_replicas,
                                    max_ongoing_requests=settings.ingress_max_ongoing_requests)
    return ingress.bind(agent, settings.model_dump())


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point for ``serve run deployments.app:app_builder`` / a ``serve deploy`` YAML (``args`` = ApiSettings
    fields; env vars SUIQA_API_* apply on top)."""
    return build_app(ApiSettings.load(**args))
