"""The answer cache in the Serve replica: react_tier's :class:`CachingAgent` around the replica's agent, its
metrics, and the model identity read from the upstreams.

Model identity: a cached answer is only valid for the models that wrote it. The names in the settings are not
enough — `suiqa restart domain` with another checkpoint, or a LoRA adapter reloaded under the same name, keeps
them. vLLM's ``GET /v1/models`` lists each served name with its ``root`` (the weights' folder) and, for an
adapter, its ``parent``; :class:`UpstreamModels` reads both tiers' lists every ``model_check_s`` in a background
task (never on a request's path) and the cache's identity is that list, so a change empties the cache. An
upstream that does not answer keeps the last known identity (the run itself will report the failure).

Per replica: each replica process has its own cache (README "Answer cache" says what sharing would take).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from react_tier.answer_cache import AnswerCacheSettings, CachingAgent

log = logging.getLogger(__name__)


def describe_models(tier: str, models: list[Any]) -> tuple[str, ...]:
    """One string per served model: tier, id, root (weights) and parent (an adapter's base)."""
    out = []
    for model in models:
        extra = getattr(model, "model_extra", None) or {}
        out.append(f"{tier}:{model.id}:{extra.get('root') or ''}:{extra.get('parent') or ''}")
    return tuple(sorted(out))


class UpstreamModels:
    """The agent's two tiers' served models, refreshed every ``interval_s`` off the request path."""

    def __init__(self, agent: Any, interval_s: float) -> None:
        self.agent, self.interval_s = agent, interval_s
        # the names the calls ask for: a tier's LoRA adapter when one is set (LLMClient.model_name), else its model
        self.current: tuple[str, ...] = (f"domain:{agent.domain_llm.model_name}", f"agent:{agent.agent_llm.model_name}")
        self._task: asyncio.Task | None = None

    async def refresh(self) -> tuple[str, ...]:
        found: list[str] = []
        for tier, client in (("domain", self.agent.domain_llm), ("agent", self.agent.agent_llm)):
            listed = await client.client.models.list(timeout=2.0)
            names = describe_models(tier, listed.data)
            found += [n for n in names if n.split(":")[1] == client.model_name]
        self.current = tuple(found)
        return self.current

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - keep the last identity; the runs report upstream failures
                log.debug("model identity not refreshed: %s", exc)
            await asyncio.sleep(self.interval_s)

    def start(self) -> UpstreamModels:
        self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    async def __call__(self) -> tuple[str, ...]:
        return self.current

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def caching_agent(agent: Any, settings: AnswerCacheSettings, metrics: Any | None = None) -> CachingAgent:
    """The replica's agent with the cache in front (also when disabled: every request is then a counted bypass).
    Call inside the replica's event loop (it starts the model-identity task)."""
    models = UpstreamModels(agent, settings.model_check_s)
    if settings.enabled:
        models.start()

    def on_lookup(status: str, reason: str) -> None:
        if metrics is not None:
            metrics.answer_cache.labels(status, reason).inc()
            metrics.answer_cache_entries.set(len(cached.store))

    cached = CachingAgent(agent, settings, models=models, on_lookup=on_lookup)
    cached.upstream_models = models
    return cached
