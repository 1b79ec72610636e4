"""Typed settings of the knowledge base (env prefix ``SUIQA_KB_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from suiqa.settings import TierSettings


class KnowledgeSettings(TierSettings):
    """Where the data and the index cache live, and the knobs of passage building and retrieval.

    Every field that changes the built index is part of the cache key, so changing one triggers a rebuild.
    """

    model_config = SettingsConfigDict(env_prefix="SUIQA_KB_", extra="forbid")

    data_dir: Path | None = Field(None, description="Vendored data root (None: suiqa.paths.data_dir()).")
    cache_dir: Path | None = Field(None, description="Index cache root (None: suiqa.paths.state_dir() / 'kb').")

    window_chars: int = Field(
        160, ge=20, le=4000,
        description="Target length in classical characters of one history passage (a window of whole sentences).")
    window_stride_chars: int = Field(
        80, ge=10, le=4000,
        description="Distance between the starts of consecutive windows; smaller than window_chars = overlap.")
    bigram_weight: float = Field(
        0.7, ge=0.0, le=10.0,
        description="Weight of the character-bigram BM25 ranking in the reciprocal-rank fusion (word = 1.0).")
    rrf_k: int = Field(30, ge=1, le=1000, description="Reciprocal-rank-fusion constant k (score = sum w/(k+rank)).")
    fusion_depth: int = Field(200, ge=10, le=5000,
                              description="How many hits of each ranking enter the fusion.")
    alias_weight: float = Field(
        1.0, ge=0.0, le=5.0,
        description="BM25 weight of the classical forms the alias table adds to a query (the query's own = 1.0).")
    skip_overlapping: bool = Field(
        True,
        description="Diversity: a history window that overlaps one ranked above it (its neighbour in the same juan) "
                    "is demoted to overlap_min_distance places below it; False = the plain fused ranking.")
    overlap_min_distance: int = Field(
        4, ge=1, le=10_000,
        description="With skip_overlapping: how many places apart two overlapping windows must be in the results "
                    "(1 = adjacent allowed, i.e. no demotion; >= k = an overlapping window only fills what is left).")
    use_aliases: bool = Field(True, description="Expand modern names/titles/verbs to their classical forms.")
    use_lexicon: bool = Field(
        True, description="Expand a query's modern words with the classical forms of the lexicon learned from the "
                          "parallel corpus (words the alias table maps are left to the table).")
    lexicon_weight: float = Field(
        1.0, ge=0.0, le=5.0,
        description="BM25 weight of a learned expansion = lexicon_weight x its lexicon score (0..1).")
    decompose: bool = Field(
        True, description="Split a question that asks several things into sub-queries, searched together with "
                          "the whole question (search_many) so each fact gets its own places in the top k.")
    subquery_weight: float = Field(
        1.0, ge=0.0, le=10.0,
        description="Weight of each sub-query's ranking in the fusion with the whole question's (1.0).")
    subquery_quota: int = Field(
        1, ge=0, le=10,
        description="search_many: places in the top k reserved for each query's best passages (0 = plain fusion).")
    sentence_weight: float = Field(
        0.0, ge=0.0, le=10.0,
        description="Weight in the fusion of the sentence-granularity ranking (each history sentence with its "
                    "heading and translation, a hit returning the window that holds it); 0 = off (0.7: +2 dev "
                    "questions at @5, -5 at @1; see benchmarks/results/knowledge/ISSUE30.md).")
    section_completion: bool = Field(
        False, description="search_many: each sub-query reserves its best-matching window inside the sections "
                          "(biography / 志 section / year) the whole question's top passages come from "
                          "(off: -1 dev question at @5).")
    section_depth: int = Field(3, ge=1, le=50,
                               description="With section_completion: how many of the whole question's top passages "
                                           "name the sections searched.")
    dense_weight: float = Field(
        0.0, ge=0.0, le=10.0,
        description="Weight in the fusion of the learned dense ranking (the char-n-gram bi-encoder trained "
                    "on the corpus, built by `suiqa kb build --dense`); 0 = off (see "
                    "benchmarks/results/knowledge/ISSUE30.md).")
    encoder_path: Path | None = Field(
        None, description="The dense encoder's weights (None: <cache_dir>/encoder.npz); built, never "
                          "committed.")
    encoder_dim: int = Field(64, ge=4, le=1024, description="Dimension of the dense encoder's vectors.")
    encoder_epochs: int = Field(4, ge=1, le=100, description="Training epochs of the dense encoder (seeded).")
    coverage_weight: float = Field(
        0.0, ge=0.0, le=10.0,
        description="Coordination-level re-rank: a top passage holding all of the question's concepts (a word or "
                    "one of its classical forms) gains this factor x its fused score; 0 = off.")
    coverage_depth: int = Field(30, ge=1, le=1000, description="How many top passages the coverage re-rank sees.")
    rerank: Literal["off", "proximity"] = Field(
        "proximity", description="Re-rank of the fused top rerank_depth: 'proximity' = the idf-weighted share of "
                                 "the question's concepts inside one span of rerank_span characters of the window "
                                 "(react_tier/knowledge/rerank.py; on: dev recall@5 0.875 -> 0.917, @1 0.667 -> "
                                 "0.646, see benchmarks/results/knowledge/ISSUE30.md); 'off' = the fused ranking.")
    rerank_depth: int = Field(50, ge=1, le=1000, description="How many top passages the re-ranker sees.")
    rerank_weight: float = Field(
        2.0, ge=0.0, le=10.0,
        description="With rerank: a passage's fused score x (1 + rerank_weight x its proximity score 0..1).")
    rerank_span: int = Field(16, ge=2, le=4000,
                             description="With rerank='proximity': the span (characters) the concepts must meet in.")
    use_poem_groups: bool = Field(
        True, description="Structured poem route: a question that names a poem group (组诗) and asks how many / "
                          "which poems ranks the group's record first; a 《title》 ranks the poems of that title "
                          "first.")
    max_query_chars: int = Field(
        1000, ge=10, le=100_000,
        description="Longer queries are rejected with KnowledgeQueryError. Inside the agent it follows "
                    "limits.max_question_chars when that is higher (unset), and may not be set lower.")
    max_k: int = Field(100, ge=1, le=10_000, description="Largest k that search/lookup_poem accept.")
    extra_poem_authors: tuple[str, ...] = Field(
        ("陈叔宝", "江总"),
        description="Authors whose poems are taken from data2/南北朝.json (poets who lived into the Sui).")
