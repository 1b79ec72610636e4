"""The ReAct knowledge-fill loop: domain draft -> Qwen Thought/Action/Observation turns -> cited Final Answer.

Finish reasons: ``stop`` (the model wrote a Final Answer), ``max_steps`` / ``deadline`` (the cap was hit and one
forced "Final Answer" call wrote the answer), ``degraded`` (the output format kept failing, or the agent model
failed, or the forced call failed: the answer is then the domain draft plus the evidence gathered).
:class:`UpstreamError` only when there is nothing at all to answer with (no agent, no draft, no evidence).

Answer shaping: the request's ``stop`` strings and ``max_tokens`` apply to the answer the client receives (not to
the Thought/Action protocol): react_tier/answer_shaper.py cuts it as it streams and the loop closes the upstream
stream right there, so vLLM stops generating. The ReAct wire format (prompt, stop words, parsing, rendering a
step, the citation pattern) is react_tier/react_format.py. Events go to the run's ``emit`` (results.Emit); each
upstream call returns its usage (a Completion, or a stream's last delta, llm.Finish), which the run counts.

Citations: the ids of passages/poems that a tool actually returned (observed) AND that the final answer or a
Thought mentions in brackets (``[id]``, ``【id】``, ``［id］``, lists: react_format's one pattern), in order of
first mention. Ids the model invents are dropped; nothing observed-but-unmentioned is added silently. The degraded
answer lists its evidence with bracketed ids, and an answer that cites nothing although the run gathered evidence
gets a visible "参考资料" line of it: in both, the citations are the evidence the answer shows. ``grounding`` scores
how far the answer's sentences are backed by the passages they cite (react_tier/grounding.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from react_tier.answer_shaper import AnswerShaper, StreamedTurn
from react_tier.budget import check_prompt_budget
from react_tier.errors import UpstreamError
from react_tier.grounding import check_grounding
from react_tier.hooks import AgentHooks, HookSet
from react_tier.llm import Completion, Finish, LLMClient, LLMDelta, to_upstream_error
from react_tier.react_format import (
    FORCE_FINAL,
    FORCE_REASONS,
    STOP_WORDS,
    ReActParseError,
    cited_ids,
    clean_output,
    final_answer_prefix,
    has_labels,
    parse_action_input,
    parse_turn,
    question_message,
    render_action,
    render_observation,
    system_prompt,
)
from react_tier.request import AgentRequest
from react_tier.results import (
    AgentEvent,
    AgentResult,
    AnswerDelta,
    Citation,
    Done,
    Emit,
    Step,
    StepFinished,
    StepStarted,
    Usage,
)
from react_tier.routing import RUN_KEY
from react_tier.seams import Knowledge
from react_tier.settings import AgentSettings
from react_tier.tools import DOMAIN_SYSTEM_PROMPT, Tool, ToolContext, ToolInputError, build_tools
from suiqa.logs import REQUEST_ID

log = logging.getLogger(__name__)
_END = object()
_NEXT = object()  # a loop step that did not answer


class _GiveUp(Exception):
    """Leave the loop early: the agent model failed (``cause``) or kept producing unparsable output."""

    def __init__(self, cause: BaseException | None = None) -> None:
        super().__init__(str(cause))
        self.cause = cause


class ReActAgent:
    def __init__(self, settings: AgentSettings, *, agent_llm: LLMClient, domain_llm: LLMClient,
                 tools: dict[str, Tool], hooks: list[AgentHooks] | None = None,
                 knowledge_base: Knowledge | None = None) -> None:
        self.settings, self.agent_llm, self.domain_llm, self.tools = settings, agent_llm, domain_llm, tools
        self.hooks = hooks if isinstance(hooks, HookSet) else HookSet(hooks)
        self._kb, self._kb_lock = knowledge_base, asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: AgentSettings, hooks: list[AgentHooks] | None = None,
                      knowledge_base: Knowledge | None = None) -> ReActAgent:
        """Clients, tools and a lazily loaded knowledge base (pass ``knowledge_base`` to inject one). Refuses
        limits that a model's known context cannot hold (react_tier/budget.py)."""
        check_prompt_budget(settings)
        hook_set = HookSet(hooks)
        return cls(settings, agent_llm=LLMClient("agent", settings.agent_llm, hook_set.on_llm_call, hook_set),
                   domain_llm=LLMClient("domain", settings.domain_llm, hook_set.on_llm_call, hook_set),
                   tools=build_tools(settings), hooks=hook_set, knowledge_base=knowledge_base)

    async def load_knowledge(self) -> Knowledge:
        """The knowledge base, loaded (and built if needed) on first use, off the event loop."""
        if self._kb is None:
            async with self._kb_lock:
                if self._kb is None:
                    from react_tier.knowledge import KnowledgeBase

                    self._kb = await asyncio.to_thread(KnowledgeBase.load, self.settings.knowledge)
        return self._kb

    async def check_upstreams(self) -> dict[str, bool]:
        """{'domain': bool, 'agent': bool}: does each endpoint answer GET /v1/models."""
        domain, agent = await asyncio.gather(self.domain_llm.ready(), self.agent_llm.ready())
        return {"domain": domain, "agent": agent}

    async def aclose(self) -> None:
        await asyncio.gather(self.agent_llm.aclose(), self.domain_llm.aclose())

    def check(self, request: AgentRequest | str) -> AgentRequest:
        """The request as it will run (question stripped, history cut), or AgentInputError naming the parameter.
        Front ends call it before they answer, so a refusal is a 400 before the first byte."""
        return AgentRequest.of(request).checked(self.settings.limits)

    async def run(self, request: AgentRequest | str) -> AgentResult:
        async with contextlib.aclosing(self.stream(request)) as events:
            async for event in events:
                if isinstance(event, Done):
                    return event.result
        raise AssertionError("stream ended without a result")

    async def stream(self, request: AgentRequest | str) -> AsyncIterator[AgentEvent]:
        """Events of one run (a plain string is a question without history). The work runs in a child task;
        leaving or cancelling the iteration cancels it, which closes any in-flight upstream HTTP request."""
        queue: asyncio.Queue[AgentEvent | object] = asyncio.Queue()
        run = _Run(self, self.check(request), queue.put_nowait)
        worker = asyncio.create_task(run.execute())
        worker.add_done_callback(lambda _: queue.put_nowait(_END))
        try:
            while (event := await queue.get()) is not _END:
                yield event
            worker.result()  # re-raise UpstreamError / AgentInputError
        finally:
            if not worker.done():
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)


class _Run:
    """State of one question: messages, steps, evidence, usage."""

    def __init__(self, agent: ReActAgent, request: AgentRequest, emit: Emit) -> None:
        self.agent, self.settings, self.hooks, self.emit = agent, agent.settings, agent.hooks, emit
        self.request, self.question, self.request_id = request, request.question, request.request_id or ""
        self.run_key = self.request_id  # the routing key: AgentRequest.checked (the library's one id maker) set it
        self.history = [turn.model_dump() for turn in request.history]
        self.max_steps = request.max_steps or self.settings.max_steps
        self.sampling = request.generation.sampling()
        self.shaper = AnswerShaper(request.generation, emit)
        self.steps: list[Step] = []
        self.observed: dict[str, Citation] = {}
        self.evidence: list[str] = []
        self.usage: dict[str, Usage] = {"domain": Usage(), "agent": Usage()}
        self.draft: str | None = None
        self.messages: list[dict[str, str]] = []
        self.agent_error: BaseException | None = None
        self.started = time.monotonic()
        self.deadline = self.started + self.settings.deadline_s
        self.loop_deadline = self.deadline - min(self.settings.final_answer_reserve_s, self.settings.deadline_s / 2)
        self.ctx = ToolContext(domain_llm=_CountedClient(agent.domain_llm, self._count),
                               get_knowledge=agent.load_knowledge, search_k=self.settings.search_k)

    def budget(self, until: float | None = None) -> float:
        return (until or self.loop_deadline) - time.monotonic()

    async def execute(self) -> None:
        # this task's context: its log lines and upstream calls (X-Request-Id) carry the request's id, and its
        # calls go to the run's replica of each tier (react_tier/routing.py), released when the run ends
        REQUEST_ID.set(self.request_id or REQUEST_ID.get())
        RUN_KEY.set(self.run_key)
        try:
            with self.hooks.span("agent.run", **{"sui.request_id": self.request_id,
                                                 "sui.max_steps": self.max_steps}) as note:
                result = await self._execute()
                note({"sui.finish_reason": result.finish_reason, "sui.steps": len(result.steps),
                      "sui.answer_tokens": result.answer_tokens, "sui.citations": len(result.citations)})
        finally:
            self.agent.agent_llm.release_run(self.run_key)
            self.agent.domain_llm.release_run(self.run_key)

    async def _execute(self) -> AgentResult:
        log.info("run_start", extra={"question_chars": len(self.question), "history_turns": len(self.history),
                                     "max_steps": self.max_steps})
        await self.hooks.on_run_start(self.question, self.request_id)
        finish, answer = "stop", None
        try:
            async with asyncio.timeout_at(self.loop_deadline):
                await self._prepare()
                if self.request.quality == "extractive":  # the ladder's last step: no LLM call at all
                    finish, answer = "degraded", await self._extractive_answer()
                    self.emit(AnswerDelta(text=answer))
                else:
                    answer = await self._loop()
                    finish = "max_steps" if answer is None else "stop"
        except TimeoutError:
            finish = "deadline"
        except _GiveUp as give_up:
            finish, self.agent_error = "degraded", give_up.cause
        if answer is None and self.agent_error is None:
            answer = await self._forced_final(finish)
        if answer is None:
            finish, answer = "degraded", await self._fallback_answer()
            self.emit(AnswerDelta(text=answer))
        elif self.observed and not self._citations(answer) and not (self.shaper.capped or self.shaper.stopped):
            answer += await self._evidence_note()
        grounding = check_grounding(answer, {cid: c.text or "" for cid, c in self.observed.items()})
        result = AgentResult(answer=answer, citations=self._citations(answer), steps=self.steps, usage=self.usage,
                             finish_reason=finish, draft=self.draft, request_id=self.request_id,
                             truncated=self.shaper.truncated, answer_tokens=self.shaper.tokens,
                             grounding=grounding, quality=self.request.quality)
        log.info("run_end", extra={"finish_reason": finish, "steps": len(self.steps), "truncated": result.truncated,
                                   "answer_tokens": result.answer_tokens, "citations": len(result.citations),
                                   "grounding": grounding.score,
                                   "latency_ms": round((time.monotonic() - self.started) * 1000, 1),
                                   "usage": {tier: u.model_dump() for tier, u in self.usage.items()}})
        await self.hooks.on_run_end(result, time.monotonic() - self.started)
        self.emit(Done(result=result))
        return result

    async def _prepare(self) -> None:
        history = self.history
        if self.settings.draft_first and self.request.quality in ("full", "fewer_steps"):
            system = DOMAIN_SYSTEM_PROMPT + (f"\n\n{self.request.instructions}" if self.request.instructions else "")
            try:
                # a request's seed also seeds the draft (its sampling stays the domain tier's): the draft is
                # in the agent's prompt, so an unseeded draft made two seeded runs answer differently (CI)
                seeded = {"seed": self.sampling["seed"]} if self.sampling.get("seed") is not None else None
                draft = await self.agent.domain_llm.complete(
                    [{"role": "system", "content": system}, *history,
                     {"role": "user", "content": self.question}], budget_s=self.budget(), sampling=seeded)
                self._count(self.agent.domain_llm.tier, draft)
                self.draft = draft.text.strip() or None
            except Exception as exc:  # noqa: BLE001 - no draft is not fatal
                log.warning("draft failed (%s): %s", self.request_id, exc)
        self.messages = self._opening_messages()
        extractive = self.request.quality == "extractive"
        if (self.settings.always_search_first or extractive) and "search_knowledge" in self.agent.tools:
            with self.hooks.span("react.step", **{"sui.step": 0, "sui.forced": True}):
                self.emit(StepStarted(index=0))
                step = await self._act(0, "由系统先检索知识库。", "search_knowledge", {"query": self.question})
                step.forced = True
                await self._finish_step(step)

    def _opening_messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": system_prompt(list(self.agent.tools.values()))}, *self.history,
                {"role": "user", "content": question_message(self.question, self.draft, self.request.instructions)}]

    async def _loop(self) -> str | None:
        first, self.parse_failures = len(self.steps), 0
        for index in range(first, first + self.max_steps):
            if time.monotonic() >= self.loop_deadline:
                raise TimeoutError
            with self.hooks.span("react.step", **{"sui.step": index}):
                answer = await self._step(index)
            if answer is not _NEXT:
                return answer
        return None

    async def _step(self, index: int) -> str | object:
        """One loop iteration: the answer (a str), or _NEXT to go on."""
        self.emit(StepStarted(index=index))
        started = time.monotonic()
        try:
            streamed = await self._stream_answer(self.agent.agent_llm.stream(
                self.messages, stop=STOP_WORDS, budget_s=self.budget(), sampling=self.sampling))
        except Exception as exc:
            if self.budget() <= 0.05:  # the per-call timeout was the loop deadline
                raise TimeoutError from exc
            await self._finish_step(Step(index=index, error=f"agent LLM: {type(exc).__name__}: {exc}",
                                         latency_s=time.monotonic() - started))
            raise _GiveUp(exc) from exc
        try:
            turn = parse_turn(streamed.text, list(self.agent.tools))
        except ReActParseError as exc:
            await self.hooks.on_parse_error(str(exc), streamed.text)
            self._remember(clean_output(streamed.text) or "（空）", render_observation(exc))
            await self._finish_step(Step(index=index, error=f"parse: {exc} output: {streamed.text[:120]!r}",
                                         latency_s=time.monotonic() - started))
            self.parse_failures += 1
            if self.parse_failures > self.settings.max_parse_retries:
                raise _GiveUp() from exc
            return _NEXT
        self.parse_failures = 0
        if turn.final_answer is not None or self.shaper.ended:
            await self._finish_step(Step(index=index, thought=turn.thought,
                                         latency_s=time.monotonic() - started))
            return self.shaper.shown
        step = await self._act(index, turn.thought, turn.action, turn.action_input)
        step.latency_s = time.monotonic() - started
        await self._finish_step(step)
        return _NEXT

    async def _stream_answer(self, deltas: AsyncIterator[LLMDelta]) -> StreamedTurn:
        """Consume a streamed turn, emitting Final Answer text (shaped by stop/max_tokens) as it arrives; stops
        reading (closing the upstream request) once the answer is cut. Returns the turn as streamed."""
        shaper, turn = self.shaper, StreamedTurn()
        async with contextlib.aclosing(deltas):
            async for delta in deltas:
                turn.add(delta)
                if isinstance(delta, Finish):
                    self._count(self.agent.agent_llm.tier, delta)
                elif prefix := final_answer_prefix(turn.text):
                    shaper.offer(prefix, turn, final=False)
                    if shaper.ended:
                        break
        if not shaper.ended:
            try:
                answer = parse_turn(turn.text).final_answer or ""
            except ReActParseError:
                answer = ""
            if answer:
                shaper.offer(answer, turn, final=True)
        return turn

    async def _act(self, index: int, thought: str, name: str, raw_input: dict[str, Any] | str) -> Step:
        """Run one tool; every failure becomes the Observation."""
        tool, started, error, sources = self.agent.tools[name], time.monotonic(), None, []
        args: dict[str, Any] | str = raw_input
        try:
            args = tool.coerce_args(parse_action_input(raw_input) if isinstance(raw_input, str) else raw_input)
            with self.hooks.span("tool", **{"sui.tool": name}) as note:
                async with asyncio.timeout(self.settings.tool_timeout_s):
                    result = await tool.run(args, self.ctx)
                note({"sui.sources": len(result.sources)})
            text, sources = result.text, result.sources
        except (ReActParseError, ToolInputError) as exc:
            text, error = f"参数错误：{exc}", f"input: {exc}"
        except TimeoutError:
            text = f"工具 {name} 超时（{self.settings.tool_timeout_s:g} 秒）。请换一种方法，或根据已有资料回答。"
            error = "timeout"
        except Exception as exc:  # noqa: BLE001 - a tool failure is an Observation, never a crash
            text, error = f"工具 {name} 出错：{type(exc).__name__}: {exc}", f"tool: {type(exc).__name__}: {exc}"
        await self.hooks.on_tool_end(name, time.monotonic() - started, error is None)
        observation = self._truncate(text)
        for citation in sources:  # observed = shown to the model: a source cut off with the observation is not
            if f"[{citation.id}]" in observation:
                self.observed.setdefault(citation.id, citation)
        if sources:
            self.evidence.append(observation)
        shown_input = raw_input if isinstance(args, str) else args
        self._remember(render_action(thought, name, shown_input), render_observation(observation))
        return Step(index=index, thought=thought, tool=name, tool_input=shown_input, observation=observation,
                    latency_s=time.monotonic() - started, error=error)

    async def _forced_final(self, reason: str) -> str | None:
        """One last agent call without tools; None when it fails or there is no time left."""
        if self.budget(self.deadline) < 0.5:
            return None
        messages = [*(self.messages or self._opening_messages()),
                    {"role": "user", "content": FORCE_FINAL.format(reason=FORCE_REASONS[reason])}]
        try:
            async with asyncio.timeout_at(self.deadline):
                turn = await self._stream_answer(self.agent.agent_llm.stream(
                    messages, stop=STOP_WORDS, budget_s=self.budget(self.deadline), sampling=self.sampling))
        except Exception as exc:  # noqa: BLE001 - fall back to draft + evidence
            log.warning("forced final answer failed (%s): %s", self.request_id, exc)
            return self.shaper.shown or None
        if not self.shaper.shown and not has_labels(turn.text):  # no labels at all: the whole text is the answer
            self.shaper.offer(clean_output(turn.text).strip(), turn, final=True)
        return self.shaper.shown or None

    async def _fallback_answer(self) -> str:
        """The evidence gathered, then the domain draft, shaped like any answer (stop strings, max_tokens).
        Evidence first: it is what the answer can cite, and a token cap should keep it rather than the draft."""
        parts = ["参考资料：\n" + "\n".join(self.evidence)] if self.evidence else []
        if self.draft:
            parts.append(f"领域模型初稿（未经核实）：\n{self.draft}" if parts else self.draft)
        if not parts:
            cause = self.agent_error or TimeoutError("no time left")
            raise to_upstream_error("agent", cause) if not isinstance(cause, UpstreamError) else cause
        return await self.shaper.whole("\n\n".join(parts), self.agent.domain_llm)

    async def _extractive_answer(self) -> str:
        """The quality ladder's extractive step: the lead sentences of each passage the forced search showed, each
        cited — an answer the grounding check can follow sentence by sentence (the evidence block of the
        degraded answer cites a passage once, so its later sentences and lines counted as uncited: 0.47-0.62)."""
        # the id first: a max_tokens cut keeps the citation (the stack test cut "...。[id]" at 24 tokens)
        lines = [f"[{c.id}] {_lead(c.text)}" for c in self.observed.values() if c.text and _lead(c.text)]
        if not lines:
            raise UpstreamError("overloaded, and the knowledge base has no evidence to answer from", 503)
        return await self.shaper.whole("\n".join(lines), self.agent.domain_llm)

    async def _evidence_note(self) -> str:
        """Answers cite their sources: one that cites none of the evidence the run gathered (a best-effort answer
        at the step cap, a model that ignored the instruction) gets that evidence listed, visibly, at its end —
        within the request's stop strings and max_tokens (counted with the domain tier's tokenizer)."""
        refs = "；".join(f"[{c.id}]《{c.title}》" for c in list(self.observed.values())[:self.settings.search_k])
        return await self.shaper.append(f"\n\n参考资料：{refs}", self.agent.domain_llm)

    def _citations(self, answer: str) -> list[Citation]:
        """The observed sources that the answer, then the Thoughts, cite (react_format's one pattern), in order."""
        texts = [answer, *(step.thought for step in self.steps if not step.forced)]
        ids = dict.fromkeys(pid for text in texts for pid in cited_ids(text or "", self.observed))
        return [self.observed[pid] for pid in ids if pid in self.observed]

    def _count(self, tier: str, call: Completion | Finish) -> None:
        """One upstream call in this run's usage (per tier)."""
        self.usage.setdefault(tier, Usage()).add(call.usage)

    def _remember(self, assistant: str, observation: str) -> None:
        self.messages += [{"role": "assistant", "content": assistant}, {"role": "user", "content": observation}]

    def _truncate(self, text: str) -> str:
        limit = self.settings.max_observation_chars
        return text if len(text) <= limit else text[: limit - 1] + "…"

    async def _finish_step(self, step: Step) -> None:
        log.log(logging.WARNING if step.error else logging.INFO, "step",
                extra={"step": step.index, "tool": step.tool, "forced": step.forced,
                       "latency_ms": round(step.latency_s * 1000, 1), "error": step.error})
        self.steps.append(step)
        await self.hooks.on_step(step)
        self.emit(StepFinished(step=step))


class _CountedClient:  # a seams.DomainClient
    """The domain tier as tools see it (seams.DomainClient): the same client, its calls counted in this run's
    usage, as the run counts its own calls (the client returns each call's usage; it keeps no tally)."""

    def __init__(self, client: LLMClient, count: Callable[[str, Completion], None]) -> None:
        self.client, self.count = client, count

    async def complete(self, messages: list[dict[str, str]], **kwargs: Any) -> Completion:
        completion = await self.client.complete(messages, **kwargs)
        self.count(self.client.tier, completion)
        return completion


def _lead(text: str, limit: int = 120) -> str:
    """The first one or two sentences of a passage, on one line, within ``limit`` characters."""
    flat = re.sub(r"\s+", "", text)
    ends = [m.end() for m in re.finditer(r"[。！？]", flat[:limit])]
    return flat[:ends[1] if len(ends) > 1 else ends[0]] if ends else flat[:limit // 2]
