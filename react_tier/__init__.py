"""The ReAct knowledge-fill tier: a pure async library (no Ray, no web server).

    settings = AgentSettings.load("agent.yaml")
    agent = ReActAgent.from_settings(settings, hooks=[MyMetricsHooks()])
    result = await agent.run(AgentRequest(question="隋朝大运河是谁主持开凿的？", history=[...], instructions=...))

Names are imported lazily (PEP 562), so `suiqa --help` and `react_tier.knowledge` stay light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ReActAgent": "agent",
    "AgentInputError": "errors", "UpstreamError": "errors",
    "AgentHooks": "hooks",
    "Agent": "request", "AgentRequest": "request", "GenerationOptions": "request", "RequestLimits": "request",
    "Turn": "request",
    "AgentEvent": "results", "AgentResult": "results", "AnswerDelta": "results", "Citation": "results",
    "Done": "results", "Step": "results", "StepFinished": "results", "StepStarted": "results", "Usage": "results",
    "AgentSettings": "settings", "ExtraToolSpec": "settings", "LLMEndpointSettings": "settings",
    "Tool": "tools", "ToolContext": "tools", "ToolResult": "tools", "register_tool": "tools",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'react_tier' has no attribute {name!r}")
    return getattr(importlib.import_module(f"react_tier.{_EXPORTS[name]}"), name)
