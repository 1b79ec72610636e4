"""The evidence-keyed answer cache (react_tier/answer_cache.py) around the contract agent, over a real (tiny)
knowledge-base index: what hits, what never does, what is never stored, invalidation, bounds, corrupt entries,
and the API's ``sui.cache`` + metrics."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient

from react_tier.answer_cache import AnswerCacheSettings, AnswerStore, CachingAgent, normalise_question
from react_tier.knowledge import KnowledgeBase
from react_tier.request import AgentRequest, GenerationOptions, Turn
from react_tier.results import AnswerDelta, Done
from tests.unit.deployments.helpers import RESULT, ContractAgent
from tests.unit.react_tier.knowledge.helpers import prebuilt_copy, tiny_settings

GROUNDED = RESULT.model_copy(update={"answer": "高祖文皇帝，姓杨氏，讳坚。[suishu:卷1:3]" * 3,
                                     "grounding": RESULT.grounding.model_copy(update={"score": 0.9})})


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    return KnowledgeBase.load(tiny_settings(prebuilt_copy(tmp_path_factory.mktemp("kb_cache"))))


class KBAgent(ContractAgent):
    """The contract agent with the knowledge base the real agent exposes (``load_knowledge``)."""

    def __init__(self, kb, **kw) -> None:
        super().__init__(result=kw.pop("result", GROUNDED), **kw)
        self.kb = kb

    async def load_knowledge(self):
        return self.kb


def make(kb, clock=None, models=None, **settings):
    inner = KBAgent(kb)
    seen: list[tuple[str, str]] = []
    cache = CachingAgent(inner, AnswerCacheSettings(**settings), models=models,
                         on_lookup=lambda status, reason: seen.append((status, reason)),
                         **({"clock": clock} if clock else {}))
    return cache, inner, seen


def ask(agent, question="隋文帝叫什么名字？", **kw):
    async def go():
        events = [e async for e in agent.stream(AgentRequest(question=question, **kw))]
        return events, events[-1].result

    return asyncio.run(go())


def test_normalised_question_keeps_one_character_apart():
    assert normalise_question(" 隋文帝 叫什么名字？ ") == normalise_question("隋文帝叫什么名字?")
    assert normalise_question("ＡＢＣ，隋") == normalise_question("abc隋")
    assert normalise_question("隋文帝叫什么名字？") != normalise_question("隋炀帝叫什么名字？")


def test_same_question_and_evidence_is_a_streamed_hit(kb):
    cache, inner, seen = make(kb, stream_chunk_chars=5)
    _, first = ask(cache)
    events, second = ask(cache, "隋文帝 叫什么名字?", request_id="r2")
    assert first.cache == "miss" and second.cache == "hit" and len(inner.requests) == 1
    deltas = [e.text for e in events if isinstance(e, AnswerDelta)]
    assert "".join(deltas) == GROUNDED.answer and len(deltas) > 1 and isinstance(events[-1], Done)
    assert second.request_id == "r2" and all(u.calls == 0 and u.prompt_tokens == 0 for u in second.usage.values())
    assert second.citations == GROUNDED.citations and second.steps == GROUNDED.steps
    assert seen == [("miss", "absent"), ("hit", "evidence_match")]


@pytest.mark.parametrize("other", [
    {"question": "隋炀帝叫什么名字？"},
    {"generation": GenerationOptions(max_tokens=10)},
    {"generation": GenerationOptions(stop=["。"])},
    {"generation": GenerationOptions(temperature=0.0, seed=3)},
    {"instructions": "请简短回答"},
    {"max_steps": 1},
])
def test_anything_that_shapes_the_answer_is_a_different_key(kb, other):
    cache, inner, _ = make(kb)
    ask(cache)
    _, result = ask(cache, **{"question": "隋文帝叫什么名字？", **other})
    assert result.cache == "miss" and len(inner.requests) == 2


def test_same_question_with_other_evidence_misses(kb, monkeypatch):
    cache, inner, _ = make(kb)
    ask(cache)
    real = kb.search
    monkeypatch.setattr(kb, "search", lambda q, k: list(reversed(real(q, k))))
    _, result = ask(cache)
    assert result.cache == "miss" and len(inner.requests) == 2


@pytest.mark.parametrize("request_kw, reason", [
    ({"generation": GenerationOptions(temperature=0.7)}, "temperature"),
    ({"cache": "off"}, "client_off"),
    ({"history": [Turn(role="user", content="隋朝"), Turn(role="assistant", content="好")]}, "history"),
])
def test_bypass(kb, request_kw, reason):
    cache, inner, seen = make(kb)
    ask(cache, **request_kw)
    _, result = ask(cache, **request_kw)
    assert result.cache == "bypass" and len(inner.requests) == 2 and seen[-1] == ("bypass", reason)


def test_temperature_opt_in_uses_the_cache(kb):
    cache, inner, _ = make(kb)
    hot = {"generation": GenerationOptions(temperature=0.7), "cache": "allow"}
    ask(cache, **hot)
    _, result = ask(cache, **hot)
    assert result.cache == "hit" and len(inner.requests) == 1


def test_disabled_cache_runs_everything(kb):
    cache, inner, seen = make(kb, enabled=False)
    ask(cache)
    _, result = ask(cache)
    assert result.cache == "bypass" and len(inner.requests) == 2 and seen == [("bypass", "disabled")] * 2
    assert len(cache.store) == 0


@pytest.mark.parametrize("update", [
    {"finish_reason": "degraded"},
    {"finish_reason": "deadline"},
    {"grounding": GROUNDED.grounding.model_copy(update={"score": 0.2})},
    {"grounding": None},
    {"citations": []},
])
def test_unworthy_answers_are_never_stored(kb, update):
    cache, inner, _ = make(kb)
    inner.result = GROUNDED.model_copy(update=update)
    ask(cache)
    _, result = ask(cache)
    assert result.cache == "miss" and len(inner.requests) == 2 and len(cache.store) == 0


def test_degraded_cannot_be_configured_cacheable():
    with pytest.raises(ValueError):
        AnswerCacheSettings(finish_reasons=["stop", "degraded"])


def test_a_kb_change_invalidates(kb, tmp_path):
    cache, inner, _ = make(kb)
    ask(cache)
    assert len(cache.store) == 1
    inner.kb = KnowledgeBase.load(tiny_settings(prebuilt_copy(tmp_path), window_chars=60))  # another index version
    _, result = ask(cache)
    assert result.cache == "miss" and cache.invalidations == 1 and len(inner.requests) == 2


def test_a_model_change_invalidates(kb):
    served = [("agent:qwen-agent:/models/a:",)]

    async def models():
        return served[0]

    cache, inner, _ = make(kb, models=models)
    ask(cache)
    served[0] = ("agent:qwen-agent:/models/b:",)  # same name, other weights (an adapter swapped in place)
    _, result = ask(cache)
    assert result.cache == "miss" and cache.invalidations == 1
    _, again = ask(cache)
    assert again.cache == "hit"


def test_a_corrupt_entry_is_dropped_and_the_question_runs(kb, caplog):
    cache, inner, seen = make(kb)
    ask(cache)
    (entry,) = cache.store._entries.values()
    entry.payload = entry.payload.replace("高祖".encode(), "炀帝".encode())  # digest no longer matches
    _, result = ask(cache)
    assert result.cache == "miss" and seen[-1] == ("miss", "corrupt") and cache.corrupt == 1
    assert "corrupt entry dropped" in caplog.text and len(inner.requests) == 2
    _, again = ask(cache)
    assert again.cache == "hit" and again.answer == GROUNDED.answer


def test_an_unreadable_entry_with_a_matching_digest_is_corrupt_too(kb):
    import hashlib

    cache, _, seen = make(kb)
    ask(cache)
    (entry,) = cache.store._entries.values()
    entry.payload = b'{"answer": 1}'
    entry.digest = hashlib.sha256(entry.payload).hexdigest()
    _, result = ask(cache)
    assert result.cache == "miss" and seen[-1] == ("miss", "corrupt")


def test_search_failure_bypasses(kb, monkeypatch):
    cache, inner, seen = make(kb)

    def broken(q, k):
        raise OSError("index gone")

    monkeypatch.setattr(kb, "search", broken)
    _, result = ask(cache)
    assert result.cache == "bypass" and seen == [("bypass", "no_knowledge")] and len(inner.requests) == 1


def test_store_lru_ttl_and_size_bounds():
    now = [0.0]
    store = AnswerStore(max_entries=2, max_bytes=10_000, ttl_s=10, clock=lambda: now[0])
    store.put("a", GROUNDED)
    store.put("b", GROUNDED)
    assert store.get("a") != "absent"  # a is now the most recent
    store.put("c", GROUNDED)
    assert store.get("b") == "absent" and store.get("a") != "absent" and store.evictions == 1
    now[0] = 11
    assert store.get("a") == "expired" and len(store) == 1
    small = AnswerStore(max_entries=100, max_bytes=len(GROUNDED.model_dump_json().encode()) * 2, ttl_s=10)
    for key in "xyz":
        small.put(key, GROUNDED)
    assert len(small) == 2 and small.bytes <= small.max_bytes


def test_api_says_cache_in_sui_and_counts_it(kb):
    from deployments.api_router import create_app
    from deployments.config import ApiSettings
    from deployments.metrics import PipelineMetrics
    from deployments.serving_chat import OpenAIServingChat

    metrics = PipelineMetrics()
    cache = CachingAgent(KBAgent(kb), AnswerCacheSettings(),
                         on_lookup=lambda s, r: metrics.answer_cache.labels(s, r).inc())
    client = TestClient(create_app(OpenAIServingChat(ApiSettings.load(), cache, metrics)))
    body = {"model": "sui-react", "messages": [{"role": "user", "content": "隋文帝叫什么名字？"}]}
    assert client.post("/v1/chat/completions", json=body).json()["sui"]["cache"] == "miss"
    assert client.post("/v1/chat/completions", json=body).json()["sui"]["cache"] == "hit"
    lines = client.post("/v1/chat/completions", json={**body, "stream": True}).text.splitlines()
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert chunks[-1]["sui"]["cache"] == "hit"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == GROUNDED.answer
    off = client.post("/v1/chat/completions", json={**body, "sui_cache": "off"}).json()
    assert off["sui"]["cache"] == "bypass"
    bad = client.post("/v1/chat/completions", json={**body, "sui_cache": "sometimes"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "sui_cache"
    value = metrics.registry.get_sample_value
    assert value("sui_answer_cache_total", {"result": "hit", "reason": "evidence_match"}) == 2
    assert value("sui_answer_cache_total", {"result": "bypass", "reason": "client_off"}) == 1


async def test_the_runs_forced_search_reuses_the_keys_search(scripted):
    """A miss searches the question once: the run's forced first search takes the cache key's result (same KB
    object, query and k); another query still searches."""
    from react_tier.tools import PREFETCHED_SEARCH
    from tests.unit.react_tier.helpers import ANSWER, make_agent

    scripted.script("agent", ANSWER)
    agent, _ = make_agent(scripted, draft_first=False, always_search_first=True)
    kb = await agent.load_knowledge()
    calls: list[str] = []
    real = kb.search

    def counted(query, k=5):
        calls.append(query)
        return real(query, k)

    kb.search = counted
    cache = CachingAgent(agent, AnswerCacheSettings())
    result = await cache.run(AgentRequest(question="通济渠是哪一年开的？"))
    await agent.aclose()
    assert calls == ["通济渠是哪一年开的？"] and result.cache == "miss"
    assert result.steps[0].forced and "[suishu:卷3:18]" in result.steps[0].observation
    assert PREFETCHED_SEARCH.get() is None  # set in the run's context only, not leaked to the caller's


def test_without_a_listing_the_identity_is_the_names_the_calls_ask_for(kb):
    cache, inner, _ = make(kb)
    ask(cache)
    inner.settings.domain_llm.adapter = "sui-lora"  # `suiqa lora load` + the setting: the domain calls change
    _, result = ask(cache)
    assert result.cache == "miss" and cache.invalidations == 1


def test_the_served_identity_follows_the_adapter_the_calls_ask_for():
    """UpstreamModels reads what vLLM lists (openai's Model type) for the name each tier's calls ask for: the
    adapter when one is set, so an adapter reloaded under the same name from another folder is a new identity."""
    from types import SimpleNamespace

    from openai.types import Model

    from deployments.answer_cache import UpstreamModels
    from react_tier.llm import LLMClient
    from react_tier.settings import LLMEndpointSettings

    def served(name, root, parent=None):
        return Model(id=name, created=0, object="model", owned_by="vllm", root=root, parent=parent)

    listing = [served("internlm2", "/models/base"), served("sui-lora", "/adapters/v1", "internlm2"),
               served("qwen", "/models/qwen")]

    class Models:  # the SDK's `models` resource: list() -> a page with `.data`
        async def list(self, timeout):
            return SimpleNamespace(data=list(listing))

    def tier(name, **fields):
        client = LLMClient(name, LLMEndpointSettings(base_url="http://127.0.0.1:9", **fields))
        client.client = SimpleNamespace(models=Models())
        return client

    agent = SimpleNamespace(domain_llm=tier("domain", model="internlm2", adapter="sui-lora"),
                            agent_llm=tier("agent", model="qwen"))
    models = UpstreamModels(agent, 10.0)
    assert models.current == ("domain:sui-lora", "agent:qwen")
    first = asyncio.run(models.refresh())
    assert first == ("domain:sui-lora:/adapters/v1:internlm2", "agent:qwen:/models/qwen:")
    listing[1] = served("sui-lora", "/adapters/v2", "internlm2")  # reloaded under the same name
    assert asyncio.run(models.refresh()) == ("domain:sui-lora:/adapters/v2:internlm2", "agent:qwen:/models/qwen:")
