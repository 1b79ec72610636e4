"""A stand-in for react_tier.ReActAgent that keeps its contract, for unit tests of the API layer.

It takes the same :class:`AgentRequest`, refuses what the real agent refuses (the same ``AgentRequest.checked``
with the same ``AgentSettings.limits``), yields the same event types and records what it was asked, so an API test
cannot pass on a request the real agent would refuse (tests/unit/deployments/test_contract_agent.py runs the
same cases against both). :func:`samples` and :func:`requests_by` read the API metrics' exposition as
Prometheus would."""

from __future__ import annotations

from collections.abc import AsyncIterator

from prometheus_client.parser import text_string_to_metric_families

from deployments.metrics import PipelineMetrics
from deployments.node_exporter import exposition
from react_tier import AgentSettings
from react_tier.request import AgentRequest
from react_tier.results import AgentEvent, AgentResult, AnswerDelta, Done, StepFinished, StepStarted

RESULT = AgentResult.model_validate({
    "answer": "隋文帝", "citations": [{"id": "suishu:卷1:3", "source": "隋书", "title": "帝纪", "text": "高祖文皇帝"}],
    "steps": [{"index": 0, "tool": "search_knowledge"}], "finish_reason": "stop", "draft": "d",
    "answer_tokens": 3,
    "grounding": {"score": 0.5, "claims": 2, "flagged": [{"text": "x", "citations": ["suishu:卷1:3"],
                                                           "support": 0.1, "reason": "unsupported"}]},
    "usage": {"agent": {"prompt_tokens": 10, "completion_tokens": 5, "calls": 1},
              "domain": {"prompt_tokens": 3, "completion_tokens": 2, "calls": 1}}})


class ContractAgent:
    """Answers every checked request with ``result`` (its request id set), streamed as ``deltas``; or raises
    ``fail`` once the run starts (an upstream failure), after ``fail_after`` deltas."""

    def __init__(self, settings: AgentSettings | None = None, result: AgentResult = RESULT,
                 deltas: tuple[str, ...] = ("隋", "文帝"), fail: BaseException | None = None,
                 fail_after: int = 0, upstreams: dict[str, bool] | None = None) -> None:
        self.settings = settings or AgentSettings.load()
        self.result, self.deltas, self.fail, self.fail_after = result, deltas, fail, fail_after
        self.upstreams = upstreams or {"domain": True, "agent": True}
        self.requests: list[AgentRequest] = []
        self.closed = 0

    def check(self, request: AgentRequest | str) -> AgentRequest:
        return AgentRequest.of(request).checked(self.settings.limits)

    async def run(self, request: AgentRequest | str) -> AgentResult:
        async for event in self.stream(request):
            if isinstance(event, Done):
                return event.result
        raise AssertionError("no result")

    async def stream(self, request: AgentRequest | str) -> AsyncIterator[AgentEvent]:
        checked = self.check(request)
        self.requests.append(checked)
        try:
            for step in self.result.steps:  # as the real agent: every step, as it starts and ends
                yield StepStarted(index=step.index)
                yield StepFinished(step=step)
            for i, delta in enumerate(self.deltas):
                if self.fail is not None and i == self.fail_after:
                    raise self.fail
                yield AnswerDelta(text=delta)
            if self.fail is not None:
                raise self.fail
            yield Done(result=self.result.model_copy(update={"request_id": checked.request_id}))
        finally:
            self.closed += 1

    async def check_upstreams(self) -> dict[str, bool]:
        return dict(self.upstreams)

    async def aclose(self) -> None:
        pass


def samples(metrics: PipelineMetrics) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of the exposition, as Prometheus would read it."""
    out = {}
    for family in text_string_to_metric_families(exposition(metrics).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def requests_by(metrics: PipelineMetrics) -> dict[tuple[str, str], float]:
    return {(dict(labels)["status"], dict(labels)["stream"]): v for (name, labels), v in samples(metrics).items()
            if name == "sui_requests_total"}
