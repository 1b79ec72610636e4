"""An evidence-keyed answer cache around the agent: a popular question is answered once per knowledge state.

Why not a similarity cache: domain traffic repeats its popular questions (a run costs ~4 LLM calls and ~10k
upstream prompt tokens), but a near-duplicate question is often a different question — 隋文帝 and 隋炀帝 differ by
one character and name two emperors. A hit here needs ALL of:

- the same *normalised* question (NFKC, case-folded, whitespace and punctuation removed: "隋文帝是谁？" and
  "隋文帝 是谁?" are one question; 隋文帝/隋炀帝 are two);
- the same evidence: a fresh knowledge-base search of the question (k = the agent's ``search_k``; ~1 ms,
  benchmarks/results/knowledge) returns the same passage ids, in order, as when the answer was cached;
- the same knowledge-base index version (its index folder's content key and manifest), the same model and adapter
  identity (the configured names and, in the Serve app, what the upstreams' /v1/models say they serve), and the
  same answer-shaping request fields (``max_tokens``, ``stop``, instructions, sampling fields, ``max_steps``).

All of that is one SHA-256 key, so an entry that any of it no longer matches is simply never found; a change of
the KB version or of the model identity also empties the cache at once (``invalidations``), so that memory is not
held by entries that can never hit.

What is stored: only answers worth repeating — finish reason in ``finish_reasons`` (``stop``, ``max_steps``;
never ``degraded`` or ``deadline``, which depend on a failure or the load of the moment), a grounding score of at
least ``min_grounding`` and (``require_citations``) at least one citation. Conversations (history) are not cached:
the answer depends on the turns before.

Bypass: a request with an explicit ``temperature > 0`` asks for a sample, and a cached answer is one fixed sample,
so it bypasses the cache unless the client opts in (``cache="allow"``); ``cache="off"`` always bypasses. The tier's
own default temperature is the operator's choice and does not bypass.

Bounded: LRU over ``max_entries`` and ``max_bytes`` (the serialized results), and a TTL. Per process: each Serve
replica has its own cache; sharing across replicas would need a real store (Redis, say) with the same key — the
entries are already stored as bytes with a digest, the form such a store needs. A corrupt entry (digest or schema
mismatch) is dropped, logged and counted, and the request runs as a miss.

A hit is streamed like any answer (the answer in ``stream_chunk_chars`` pieces, then Done) with ``cache: "hit"``,
the cached run's steps and citations, and zero upstream usage (this request made no upstream call).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import unicodedata
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from react_tier.request import AgentRequest
from react_tier.results import AgentEvent, AgentResult, AnswerDelta, Done, Usage
from react_tier.seams import Knowledge
from react_tier.tools import PREFETCHED_SEARCH

if TYPE_CHECKING:
    from react_tier.agent import ReActAgent

log = logging.getLogger(__name__)
CacheStatus = Literal["hit", "miss", "bypass"]
# why a request did not use the cache (the metrics' `reason` label: a fixed set)
BYPASS_REASONS = ("disabled", "client_off", "temperature", "history", "quality_step", "no_knowledge")
MISS_REASONS = ("absent", "expired", "corrupt")


class AnswerCacheSettings(BaseModel):
    """The evidence-keyed answer cache (react_tier/answer_cache.py), per Serve replica."""

    model_config = {"extra": "forbid"}

    enabled: bool = Field(True, description="Off: every request runs (sui.cache 'bypass', reason 'disabled').")
    max_entries: int = Field(2048, ge=1, description="LRU bound on cached answers per replica.")
    max_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="LRU bound on their serialized size.")
    ttl_s: float = Field(3600.0, gt=0, description="An entry older than this is a miss.")
    min_grounding: float = Field(0.5, ge=0, le=1, description="Answers with a lower grounding score are not "
                                 "cached (0.5: react_tier/grounding.py's support threshold).")
    finish_reasons: list[Literal["stop", "max_steps"]] = Field(
        default_factory=lambda: ["stop", "max_steps"],
        description="Finish reasons that may be cached (degraded and deadline never are).")
    require_citations: bool = Field(True, description="Only answers that cite at least one observed source.")
    stream_chunk_chars: int = Field(24, ge=1, description="A hit streams its answer in pieces of this size.")
    model_check_s: float = Field(10.0, gt=0, description="Serve app: how often the upstreams' /v1/models are "
                                 "read to notice a model or adapter change (which empties the cache).")

    @field_validator("finish_reasons")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


def normalise_question(question: str) -> str:
    """NFKC, case-folded, without whitespace, punctuation or symbols: the form two askings of one question share."""
    text = unicodedata.normalize("NFKC", question).casefold()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PZSC")


@dataclass(frozen=True)
class Identity:
    """What every cached answer depends on besides the request: the KB index and the models behind the names."""

    kb_version: str
    models: tuple[str, ...]


def cache_key(request: AgentRequest, evidence: list[str], identity: Identity, max_steps: int) -> str:
    generation = request.generation.model_dump(mode="json")
    material = {"q": normalise_question(request.question), "evidence": evidence, "kb": identity.kb_version,
                "models": list(identity.models), "generation": generation,
                "instructions": request.instructions or "", "max_steps": max_steps}
    return hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class _Entry:
    payload: bytes  # AgentResult as JSON
    digest: str     # sha256 of payload
    stored_at: float


class CorruptEntry(Exception):
    pass


class AnswerStore:
    """A bounded in-memory LRU + TTL map key -> AgentResult, entries kept as bytes with a digest."""

    def __init__(self, max_entries: int, max_bytes: int, ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries, self.max_bytes, self.ttl_s, self._clock = max_entries, max_bytes, ttl_s, clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.bytes = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> AgentResult | Literal["absent", "expired"]:
        """The stored result, "absent", "expired" (dropped), or CorruptEntry (dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return "absent"
        if self._clock() - entry.stored_at > self.ttl_s:
            self._drop(key)
            return "expired"
        try:
            if hashlib.sha256(entry.payload).hexdigest() != entry.digest:
                raise CorruptEntry("digest mismatch")
            result = AgentResult.model_validate_json(entry.payload)
        except (ValidationError, ValueError) as exc:
            self._drop(key)
            raise CorruptEntry(str(exc).splitlines()[0]) from exc
        self._entries.move_to_end(key)
        return result

    def put(self, key: str, result: AgentResult) -> bool:
        payload = result.model_dump_json().encode()
        if len(payload) > self.max_bytes:
            return False
        if key in self._entries:
            self._drop(key)
        self._entries[key] = _Entry(payload, hashlib.sha256(payload).hexdigest(), self._clock())
        self.bytes += len(payload)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
            self.evictions += 1
        return True

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def _drop(self, key: str) -> None:
        self.bytes -= len(self._entries.pop(key).payload)


def kb_version(kb: Knowledge) -> str:
    """The loaded index's version: its content key (the folder name, from the data files' hashes and the index
    settings) and a digest of its manifest."""
    manifest = json.dumps(getattr(kb, "manifest", {}), sort_keys=True, ensure_ascii=False, default=str)
    folder = getattr(getattr(kb, "index_dir", None), "name", "")
    return f"{folder}:{hashlib.sha256(manifest.encode()).hexdigest()[:12]}"


OnLookup = Callable[[CacheStatus, str], None]


class CachingAgent:
    """The :class:`react_tier.request.Agent` protocol around a ReActAgent, with the answer cache in front.

    ``models``: an async callable returning the upstreams' model identity (the Serve app reads /v1/models);
    default: the configured model names. ``on_lookup(status, reason)``: one call per request (metrics)."""

    def __init__(self, agent: ReActAgent, settings: AnswerCacheSettings, *,
                 models: Callable[[], Awaitable[tuple[str, ...]]] | None = None,
                 on_lookup: OnLookup | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.agent, self.settings = agent, settings
        self.store = AnswerStore(settings.max_entries, settings.max_bytes, settings.ttl_s, clock)
        self._models, self._on_lookup = models, on_lookup
        self._identity: Identity | None = None
        # (the KB object, its version): held, so never a reused id
        self._kb_version: tuple[Knowledge, str] | None = None
        self.invalidations = 0
        self.corrupt = 0

    # -- the Agent protocol: everything but stream() is the agent's own
    def check(self, request: AgentRequest) -> AgentRequest:
        return self.agent.check(request)

    async def check_upstreams(self) -> dict[str, bool]:
        return await self.agent.check_upstreams()

    async def aclose(self) -> None:
        await self.agent.aclose()

    async def load_knowledge(self) -> Knowledge:
        return await self.agent.load_knowledge()

    async def run(self, request: AgentRequest) -> AgentResult:
        async with contextlib.aclosing(self.stream(request)) as events:
            async for event in events:
                if isinstance(event, Done):
                    return event.result
        raise AssertionError("stream ended without a result")

    def invalidate(self, reason: str) -> None:
        if len(self.store):
            log.info("answer_cache_invalidated", extra={"reason": reason, "entries": len(self.store)})
        self.store.clear()
        self.invalidations += 1

    async def identity(self) -> Identity:
        """The current identity; a change from the last one empties the cache."""
        kb = await self.agent.load_knowledge()
        if self._kb_version is None or self._kb_version[0] is not kb:
            self._kb_version = (kb, kb_version(kb))
        version = self._kb_version[1]
        settings = self.agent.settings
        models = await self._models() if self._models else (settings.domain_llm.model_name,
                                                             settings.agent_llm.model_name)
        current = Identity(version, tuple(models))
        if self._identity is not None and current != self._identity:
            self.invalidate("knowledge" if current.kb_version != self._identity.kb_version else "models")
        self._identity = current
        return current

    def _bypass_reason(self, request: AgentRequest) -> str | None:
        policy = request.cache
        if not self.settings.enabled:
            return "disabled"
        if policy == "off":
            return "client_off"
        if request.history:
            return "history"
        temperature = request.generation.temperature
        if temperature is not None and temperature > 0 and policy != "allow":
            return "temperature"
        if request.quality != "full":
            return "quality_step"
        return None

    def cacheable(self, result: AgentResult) -> bool:
        s = self.settings
        grounding = result.grounding.score if result.grounding is not None else 0.0
        return (result.finish_reason in s.finish_reasons and grounding >= s.min_grounding
                and (bool(result.citations) or not s.require_citations))

    def _note(self, status: CacheStatus, reason: str) -> None:
        if self._on_lookup is not None:
            self._on_lookup(status, reason)

    async def _lookup(self, request: AgentRequest) -> tuple[str | None, AgentResult | None, str, tuple | None]:
        """(key, cached result or None, reason, the key's search for the run to reuse). key None: bypass (reason
        says why)."""
        reason = self._bypass_reason(request)
        if reason is not None:
            return None, None, reason, None
        try:
            identity = await self.identity()
            kb = await self.agent.load_knowledge()
            passages = await asyncio.to_thread(kb.search, request.question, self.agent.settings.search_k)
        except Exception as exc:  # noqa: BLE001 - no evidence to key on: run uncached, the run reports the rest
            log.warning("answer cache: no evidence key (%s: %s)", type(exc).__name__, exc)
            return None, None, "no_knowledge", None
        prefetched = (kb, request.question, self.agent.settings.search_k, passages)
        max_steps = request.max_steps or self.agent.settings.max_steps
        key = cache_key(request, [p.id for p in passages], identity, max_steps)
        try:
            found = self.store.get(key)
        except CorruptEntry as exc:
            self.corrupt += 1
            log.warning("answer cache: corrupt entry dropped (%s); running the question", exc)
            return key, None, "corrupt", prefetched
        if isinstance(found, str):
            return key, None, found, prefetched
        return key, found, "evidence_match", prefetched

    async def stream(self, request: AgentRequest) -> AsyncIterator[AgentEvent]:
        checked = self.check(request)
        key, cached, reason, prefetched = await self._lookup(checked)
        if cached is not None:
            self._note("hit", reason)
            async for event in self._replay(checked, cached):
                yield event
            return
        status: CacheStatus = "bypass" if key is None else "miss"
        self._note(status, reason)
        identity = self._identity
        # the run's forced first search takes the key's search (react_tier/tools.py); the worker task the agent
        # starts copies this context, and the caller's context is cleared again at the end
        PREFETCHED_SEARCH.set(prefetched)
        try:
            async with contextlib.aclosing(self.agent.stream(checked)) as events:
                async for event in events:
                    if isinstance(event, Done):
                        result = event.result
                        if key is not None and self.cacheable(result) and self._identity == identity:
                            self.store.put(key, result)
                        event = Done(result=result.model_copy(update={"cache": status}))
                    yield event
        finally:
            PREFETCHED_SEARCH.set(None)

    async def _replay(self, request: AgentRequest, cached: AgentResult) -> AsyncIterator[AgentEvent]:
        size = self.settings.stream_chunk_chars
        for start in range(0, len(cached.answer), size):
            yield AnswerDelta(text=cached.answer[start:start + size])
        usage = {tier: Usage() for tier in cached.usage}
        yield Done(result=cached.model_copy(update={"cache": "hit", "request_id": request.request_id,
                                                    "usage": usage}))
