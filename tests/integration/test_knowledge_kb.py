"""The knowledge base on the real vendored data: built once per session (cached by data hash under
$SUIQA_HOME/kb, i.e. var/test/kb), then searched, looked up and driven through the CLI."""

from __future__ import annotations

import json
import random
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from react_tier.knowledge import KnowledgeBase, KnowledgeQueryError, KnowledgeSettings, Passage

pytestmark = pytest.mark.integration
DEV_QUESTIONS = Path(__file__).resolve().parent.parent / "data" / "kb_dev_questions.jsonl"
HELDOUT_QUESTIONS = Path(__file__).resolve().parent.parent / "data" / "kb_heldout_questions.jsonl"


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load(KnowledgeSettings())


def test_index_covers_all_sources(kb):
    sources = {kb._records[i]["source"] for i in range(len(kb))}
    assert sources == {"suishu", "zztj", "bio", "poem", "poemgroup"}
    assert kb.get("suishu:卷1:0").text.startswith("高祖上")
    assert kb.get("poem:sui#61").source == "poem"
    assert kb.get("bio:孔德绍") is not None and "孔德紹" in kb.get("bio:孔德绍").text  # original kept
    assert kb.get("no-such-id") is None and kb.get(None) is None


def test_bilingual_windows_keep_classical_and_modern_together(kb):
    passage = next(p for p in (kb.get(f"suishu:卷1:{i}") for i in range(5)) if "讳坚" in p.text)
    assert "【译文】" in passage.text and "杨名坚" in passage.text


def test_ids_are_stable_across_rebuilds(kb, tmp_path):
    rebuilt = KnowledgeBase.build(KnowledgeSettings(cache_dir=tmp_path), force=True)
    assert rebuilt.index_dir.name == kb.index_dir.name  # same data, same key
    assert [r["id"] for r in rebuilt._records] == [r["id"] for r in kb._records]
    assert [r["text"] for r in rebuilt._records[::97]] == [r["text"] for r in kb._records[::97]]
    assert [p.id for p in rebuilt.search("隋炀帝开凿通济渠")] == [p.id for p in kb.search("隋炀帝开凿通济渠")]


def test_cache_key_follows_the_data_files(tmp_path):
    from react_tier.knowledge.index import cache_key
    from suiqa.paths import data_dir

    copy = tmp_path / "data"
    shutil.copytree(data_dir() / "knowledge", copy / "knowledge")
    shutil.copytree(data_dir() / "poetry-qa" / "data2", copy / "poetry-qa" / "data2")
    settings = KnowledgeSettings()
    before, _ = cache_key(settings, copy)
    assert before == cache_key(settings, data_dir())[0]
    bio = copy / "knowledge" / "biographies" / "authors_tang_mentioning_sui.json"
    bio.write_text(bio.read_text(encoding="utf-8").replace("魏徵", "魏征"), encoding="utf-8")
    assert cache_key(settings, copy)[0] != before
    (copy / "poetry-qa" / "data2" / "隋.json").unlink()
    with pytest.raises(Exception, match="隋.json"):
        cache_key(settings, copy)


def test_search_returns_ranked_passages(kb):
    results = kb.search("隋炀帝开凿通济渠征发了多少人", k=5)
    assert 1 <= len(results) <= 5 and all(isinstance(p, Passage) for p in results)
    assert [p.score for p in results] == sorted((p.score for p in results), reverse=True)
    assert any("开通济渠" in p.text for p in results)
    assert len(kb.search("杨素", k=50)) == 50


def test_traditional_and_simplified_queries_find_the_same(kb):
    simplified = [p.id for p in kb.search("隋炀帝营建东都洛阳")]
    traditional = [p.id for p in kb.search("隋煬帝營建東都洛陽")]
    assert simplified == traditional and simplified
    # a traditional-character biography is found by a simplified query, and by a traditional one
    assert "bio:孔德绍" in [p.id for p in kb.search("孔德绍")]
    assert "bio:孔德绍" in [p.id for p in kb.search("孔德紹")]


def test_every_line_of_a_poem_finds_it(kb):
    poems = [p for p in kb._poems.poems if p.content.count("，") >= 2]
    sample = random.Random(7).sample(poems, 25) + [kb._poems.poems[0]]
    for poem in sample:
        lines = re.split(r"[，。！？；]", poem.content)
        for line in (x for x in lines if len(re.findall(r"[\u4e00-\u9fff]", x)) >= 4):
            found = kb.lookup_poem(line, k=5)
            assert any(p.content == poem.content for p in found), (poem.id, line, found)


def test_poem_lookup_variants(kb):
    assert kb.lookup_poem("空梁落燕泥")[0].id == "poem:sui#61"
    assert kb.lookup_poem("空樑落燕泥")[0].id == "poem:sui#61"  # traditional
    assert kb.lookup_poem("空梁落燕子")[0].id == "poem:sui#61"  # misremembered
    assert "poem:sui#61" in [p.id for p in kb.lookup_poem(title="昔昔盐")]
    by_author = kb.lookup_poem(author="隋炀帝", k=100)
    assert by_author and all(p.author == "杨广" for p in by_author)
    assert all(p.author == "杨广" for p in kb.lookup_poem(title="春江花月夜", author="杨广"))


@pytest.mark.parametrize("query, error", [
    ("", "empty query"), ("   ", "empty query"), ("\x00\x01", "empty query"),
    ("隋" * 10_000, "query too long: 10000 characters"), ("\udcff\x80\x81\x00" * 50, "empty query")])
def test_bad_queries_give_a_clear_error(kb, query, error):
    with pytest.raises(KnowledgeQueryError, match=re.escape(error)):
        kb.search(query)


def test_a_query_of_every_latin1_character_is_searched():
    """Printable junk with letters and digits is a query like any other: searched, not refused."""
    from react_tier.knowledge.text import clean_query

    query = bytes(range(256)).decode("latin-1")
    assert clean_query(query, 1000).startswith("!\"#$%&'()*+,-./0123456789")


def test_latin1_junk_returns_a_ranked_list(kb):
    results = kb.search(bytes(range(256)).decode("latin-1"))
    assert isinstance(results, list) and len(results) <= 5 and all(isinstance(p, Passage) for p in results)


def test_junk_and_limits(kb):
    assert kb.search("zzqx qqq") == []
    for bad_k in (0, -1, 10**9, "5", 2.5, True):
        with pytest.raises(KnowledgeQueryError, match="k must be"):
            kb.search("隋文帝", k=bad_k)
    with pytest.raises(KnowledgeQueryError):
        kb.lookup_poem()
    with pytest.raises(KnowledgeQueryError):
        kb.lookup_poem("")
    with pytest.raises(KnowledgeQueryError):
        kb.lookup_poem("燕" * 10_000)


def test_concurrent_reads_match_sequential(kb):
    queries = ["隋文帝去世", "李密攻占兴洛仓", "空梁落燕泥", "冼夫人", "杨玄感黎阳起兵", "大索貌阅"] * 4
    expected = [[p.id for p in kb.search(q)] for q in queries]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda q: [p.id for p in kb.search(q)], queries))
    assert got == expected


def test_dev_set_recall_does_not_regress(kb):
    from react_tier.knowledge.evaluation import evaluate, load_questions

    questions = load_questions(DEV_QUESTIONS)
    assert len(questions) >= 90
    report = evaluate(kb, questions, ks=(1, 5, 10))
    # measured (benchmarks/knowledge_bench.py, 2026-11-29): 0.667 / 0.875 / 0.927 (legacy d01-d48 alone: 0.917
    # @5, it was 0.938 before the issue-18 additions); guards sit a question or two below
    assert report.recall(5) >= 0.85, report.misses_at_5
    assert report.recall(10) >= 0.9, report.first_hit_rank
    assert report.recall(1) >= 0.63
    assert report.recall(5, "poem") >= 0.9 and report.recall(5, "single") >= 0.9


def test_heldout_set_recall_does_not_regress(kb):
    """Questions written before the retrieval was tuned and not used for tuning (measured: 0.548 / 0.767 / 0.808
    @1/@5/@10 over 73 questions; the 26 legacy ones 0.846 @5 as before; h08 was looked at when the overlap
    demotion was chosen). Issue 18's target of 0.95 @5 is NOT reached: modern-word (0.583) and multi-fact (0.500)
    questions miss; see benchmarks/results/knowledge/."""
    from react_tier.knowledge.evaluation import evaluate, load_questions

    questions = load_questions(HELDOUT_QUESTIONS)
    assert len(questions) >= 70
    assert not {q.id for q in questions} & {q.id for q in load_questions(DEV_QUESTIONS)}
    report = evaluate(kb, questions)
    assert report.recall(5) >= 0.73, report.misses_at_5
    assert report.recall(1) >= 0.5


def test_overlapping_windows_are_kept_apart_in_the_top_k(kb):
    """Consecutive windows of a juan share half their text: the diversity step puts two such windows at least
    overlap_min_distance places apart (with a distance beyond k, only one of a pair is in the top k while other
    passages are left); with the step off, the plain ranking does put them next to each other."""
    def closest_overlapping_pair(ids):
        places = {tuple(i.rsplit(":", 1)): n for n, i in enumerate(ids) if i.count(":") == 2}
        gaps = [abs(places[(j, str(int(w) + 1))] - n) for (j, w), n in places.items() if (j, str(int(w) + 1)) in places]
        return min(gaps, default=None)

    queries = ["高颎被杀的原因", "陈后主投井", "杨玄感起兵黎阳", "隋文帝去世"]
    distance = kb.settings.overlap_min_distance
    assert distance > 1
    for q in queries:
        gap = closest_overlapping_pair([p.id for p in kb.search(q, k=10)])
        assert gap is None or gap >= distance, (q, gap)
    plain = KnowledgeBase(KnowledgeSettings(skip_overlapping=False), kb.index_dir)
    assert any(closest_overlapping_pair([p.id for p in plain.search(q, k=10)]) == 1 for q in queries)
    strict = KnowledgeBase(KnowledgeSettings(overlap_min_distance=10_000), kb.index_dir)
    assert not any(closest_overlapping_pair([p.id for p in strict.search(q, k=10)]) for q in queries)
    for q in queries:  # only the order changes: the best passage stays first, nothing new comes in
        diversified, ranked = [p.id for p in kb.search(q, k=10)], [p.id for p in plain.search(q, k=100)]
        assert diversified[0] == ranked[0] and set(diversified) <= set(ranked)


def test_variant_characters_meet_their_standard_form(kb):
    """The 资治通鉴 writes 阎毘 (the 隋书 阎毗): either form finds the 资治通鉴 windows, and both rank the same."""
    standard = [p.id for p in kb.search("阎毗", k=10)]
    assert standard == [p.id for p in kb.search("阎毘", k=10)]
    assert any(i.startswith("zztj:") and "毘" in kb.get(i).text for i in standard)


def test_cli_json_formats(kb):
    from typer.testing import CliRunner

    from react_tier.knowledge.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["search", "隋文帝去世", "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout[result.stdout.index("["):])
    assert len(rows) == 3 and all(set(r) == {"id", "source", "title", "text", "score"} for r in rows)
    result = runner.invoke(app, ["poem", "空梁落燕泥", "--json"])
    rows = json.loads(result.stdout[result.stdout.index("["):])
    assert rows[0] == {"id": "poem:sui#61", "title": "昔昔盐", "author": "薛道衡",
                       "content": kb.get("poem:sui#61").text.split("\n", 1)[1]}
    result = runner.invoke(app, ["group", "读曲歌", "--json"])
    group = json.loads(result.stdout[result.stdout.index("{"):])
    assert group["count"] == 89 and len(group["members"]) == 89 and group["id"] == "poemgroup:读曲歌八十九首"
    assert runner.invoke(app, ["group", "没有这组诗"]).exit_code != 0
    result = runner.invoke(app, ["search", "   "])
    assert result.exit_code != 0 and isinstance(result.exception, KnowledgeQueryError)


# ---------------------------------------------------------------- issue 18: lexicon, decomposition, poem facts
# Pairs the lexicon learns from the parallel corpus that the hand-written alias table does NOT contain (checked
# below), and pairs it learns that agree with the table. 死 learns 卒 (死 translates 卒 / 死 in the corpus; 崩 is
# translated 去世 / 逝世 / 驾崩, and the lexicon maps 去世 -> 崩).
LEARNED_NOT_IN_TABLE = {"打败": {"破", "击破"}, "派": {"遣"}, "杀": {"斩", "诛"}, "百姓": {"民"},
                        "军队": {"兵", "师"}, "逃跑": {"遁"}}
LEARNED_AS_IN_TABLE = {"死": {"卒"}, "去世": {"卒", "薨", "崩"}, "年号": {"改元"}, "起兵": {"举兵"},
                       "称帝": {"僭号"}}


def test_learned_lexicon_maps_modern_words_the_alias_table_does_not(kb):
    from react_tier.knowledge.aliases import ALIASES

    for modern, wanted in LEARNED_NOT_IN_TABLE.items():
        learned = {form for form, _ in kb.lexicon.forms(modern)}
        assert wanted <= learned, (modern, kb.lexicon.forms(modern))
        assert not wanted & set(ALIASES.get(modern, ())), modern  # new knowledge, not the table's
    for modern, wanted in LEARNED_AS_IN_TABLE.items():
        assert wanted <= {form for form, _ in kb.lexicon.forms(modern)}, modern
        assert wanted <= set(ALIASES[modern]) | {"僭号"}
    meta = kb.manifest["lexicon"]
    assert meta["pairs"] == 12349 and meta["entries"] > 1000  # all 隋书 + 资治通鉴 pairs


def test_lexicon_expands_a_query_with_weights_and_the_table_overrides(kb):
    tokens = kb.query_tokens("杨玄感的军队被谁打败了")
    extra = dict(tokens.extra_words)
    assert "破" in extra and 0 < extra["破"] < 1 and "兵" in extra
    # 去世 is in the alias table: its forms come from the table (weight alias_weight), not from the lexicon
    extra = dict(kb.query_tokens("杨素是哪一年去世的").extra_words)
    assert extra["崩"] == kb.settings.alias_weight and extra["殂"] == kb.settings.alias_weight
    off = KnowledgeBase(KnowledgeSettings(use_lexicon=False), kb.index_dir)
    assert "破" not in dict(off.query_tokens("杨玄感的军队被谁打败了").extra_words)


@pytest.mark.parametrize(("question", "parts"), [
    ("杨玄感是哪一年起兵的，带头的是谁？", ["杨玄感是哪一年起兵的", "杨玄感带头的是谁"]),
    ("高颎在隋文帝时担任什么官，后来又被封为什么？", ["高颎在隋文帝时担任什么官", "高颎被封为什么"]),
    ("隋文帝是在哪座宫殿去世的？去世时多少岁？", ["隋文帝是在哪座宫殿去世的", "隋文帝去世时多少岁"]),
    ("窦建德在乐寿自称什么王，又改了什么年号？", ["窦建德在乐寿自称什么王", "窦建德改了什么年号"]),
])
def test_decomposition_splits_multi_fact_questions(kb, question, parts):
    assert kb.subqueries(question) == parts
    assert kb.subqueries("杨玄感是哪一年起兵的？") == []


def test_search_many_gives_each_query_its_own_places(kb):
    queries = ["隋文帝在哪座宫殿去世", "独孤皇后葬在哪里", "杨素被封为什么国公"]
    best = [kb.search(q, k=1)[0].id for q in queries]
    assert len(set(best)) == 3
    for k in (3, 5):  # the quota: every query's best passage is in the top k, however the fusion ranks it
        found = [p.id for p in kb.search_many(queries, k=k)]
        assert len(found) == k == len(set(found)) and set(best) <= set(found)
    # without the quota, a heavily weighted query crowds the others out of a top 3
    assert not set(best) <= {p.id for p in kb.search_many(queries, k=3, quota=0, weights=[3.0, 0.1, 0.1])}
    with pytest.raises(KnowledgeQueryError):
        kb.search_many([], k=5)
    with pytest.raises(KnowledgeQueryError):
        kb.search_many(["隋文帝"], k=5, weights=[1.0, 2.0])


@pytest.mark.parametrize(("title", "author", "count", "size"), [
    ("读曲歌", None, 89, 89), ("《华山畿》", None, 25, 25), ("帝京篇", "李世民", 10, 10),
    ("赠薛播州诗", "杨素", 14, 14), ("寿阳乐", None, 9, 9), ("企喻歌", None, 4, 4), ("五音曲", None, 5, 5),
    ("古意六首", "王绩", 6, 6),
    ("齐明堂乐歌十五首", None, 15, 15), ("春江花月夜", "隋炀帝", 2, 2)])
def test_poem_group_counts(kb, title, author, count, size):
    group = kb.poem_group(title, author)
    assert group is not None and (group.count, group.size) == (count, size), group
    assert len(group.members) == size and len({m[1] for m in group.members}) == size
    assert all(kb.get(pid) is not None for _, pid, _ in group.members)
    assert kb.get(group.id).source == "poemgroup" and f"共{count}首" in kb.get(group.id).text


def test_lookup_poem_returns_the_structured_fields(kb):
    [poem] = kb.lookup_poem(title="华山畿二十五首 其二", k=1)
    assert (poem.dynasty, poem.group, poem.group_label, poem.group_size) == (
        "隋", "poemgroup:华山畿二十五首", "其二", 25)
    assert poem.collection and poem.author == "无名氏"
    assert "组诗《华山畿二十五首》共25首之其二" in poem.facts_line()
    xixi = kb.lookup_poem("空梁落燕泥")[0]
    assert (xixi.author, xixi.dynasty, xixi.group) == ("薛道衡", "隋", "")
    assert kb.poem_group("不存在的诗") is None and kb.poem_group("读曲歌", "杨素") is None


def test_counting_and_title_questions_put_the_record_first(kb):
    assert kb.search("《寿阳乐》一共有几首？", k=1)[0].id == "poemgroup:寿阳乐"
    assert kb.search("李世民的《帝京篇》有多少首？", k=1)[0].id == "poemgroup:帝京篇十首"
    assert kb.search("《出塞二首和杨素》是谁写的？", k=1)[0].title.startswith("出塞二首和杨素")
    off = KnowledgeBase(KnowledgeSettings(use_poem_groups=False), kb.index_dir)
    assert off.search("《寿阳乐》一共有几首？", k=1)[0].id != "poemgroup:寿阳乐"  # the route is what puts it first
