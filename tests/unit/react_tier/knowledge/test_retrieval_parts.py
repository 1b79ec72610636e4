"""Unit tests of the issue-18 retrieval parts that need no index: query decomposition, poem groups, the IBM
Model 1 lexicon on a toy parallel corpus, and multi-fact scoring of the evaluation."""

from __future__ import annotations

import json

import pytest

from react_tier.knowledge import Passage, Poem
from react_tier.knowledge.decompose import decompose
from react_tier.knowledge.evaluation import covering_rank, load_questions
from react_tier.knowledge.lexicon import Lexicon, LexiconParams, train_model1
from react_tier.knowledge.poem_groups import build_groups, chinese_number, group_name, split_title


# ------------------------------------------------------------------ decomposition
@pytest.mark.parametrize(("question", "parts"), [
    ("隋文帝是在哪座宫殿去世的？去世时多少岁？", ["隋文帝是在哪座宫殿去世的", "隋文帝去世时多少岁"]),
    ("杨素被封为什么国公，死后的谥号是什么？", ["杨素被封为什么国公", "杨素死后的谥号是什么"]),
    ("杨玄感起兵是哪一年，他的叔父是谁？", ["杨玄感起兵是哪一年", "杨玄感的叔父是谁"]),
    ("通济渠引的是哪条河的水，永济渠又引的是哪条河？", ["通济渠引的是哪条河的水", "永济渠又引的是哪条河"]),
    # a clause without a question word is the setting of the next one, not a question of its own
    ("隋军攻进建康城时，陈后主躲到了哪里，后来被封为什么？", ["隋军攻进建康城时陈后主躲到了哪里", "陈后主被封为什么"]),
])
def test_multi_fact_questions_split_into_one_query_per_fact(question, parts):
    assert decompose(question, _words) == parts


@pytest.mark.parametrize("question", ["隋文帝是哪一年去世的？", "隋军攻进建康城时，陈后主躲到了什么地方？",
                                      "杨广", "", "，，？"])
def test_one_question_is_not_split(question):
    assert decompose(question, _words) == []


def test_at_most_four_parts():
    assert len(decompose("谁？" * 9, _words)) == 4


def _words(text: str) -> list[str]:
    """A stand-in for jieba: the names and words of the examples, else single characters."""
    known = ["隋文帝", "杨素", "杨玄感", "通济渠", "永济渠", "隋军", "陈后主", "建康城", "国公", "谥号", "宫殿", "去世",
             "起兵", "叔父", "死后", "后来", "哪一年", "什么", "多少", "哪里", "哪座", "哪条"]
    out, i = [], 0
    while i < len(text):
        word = next((w for w in known if text.startswith(w, i)), text[i])
        out.append(word)
        i += len(word)
    return out


# ------------------------------------------------------------------ poem groups
def test_chinese_numbers_and_titles():
    assert [chinese_number(x) for x in ("十", "二十五", "八十九", "十五", "一百零二", "两", "首")] == [
        10, 25, 89, 15, 102, 2, None]
    assert split_title("读曲歌八十九首 其八十一") == ("读曲歌八十九首", "其八十一")
    assert split_title("五音曲 其五 羽引") == ("五音曲", "其五 羽引")
    assert group_name("读曲歌八十九首") == "读曲歌" and group_name("企喻歌") == "企喻歌"


def _poem(pid, title, content, author="", dynasty="隋"):
    return Poem(id=f"poem:{pid}", title=title, author=author, content=content, dynasty=dynasty, collection="隋诗")


def test_groups_count_members_and_prefer_the_stated_count():
    poems = [_poem(1, "企喻歌 其一", "男儿欲作健，结伴不须多。"), _poem(2, "企喻歌 其四", "男儿可怜虫，出门怀死忧。"),
             _poem(3, "华山畿二十五首 其二", "闻欢大养蚕，定得几许丝。"),
             _poem(4, "华山畿二十五首 其一", "华山畿，君既为侬死，独生为谁施。"),
             _poem(5, "华山畿二十五首", "华山畿，君既为侬死，独生为谁施？欢若见怜时。"),  # head record = 其一 again
             _poem(6, "五音曲 其五 羽引", "玄英纪运。冬冰折。"),
             _poem(7, "五音曲 羽引", "玄英纪运，冬冰折。"),  # same poem
             _poem(8, "赠马明生诗二首", "一首诗的内容。", author="某人"),
             _poem(9, "昔昔盐", "垂柳覆金堤", author="薛道衡"),
             _poem(10, "企喻歌 其二", "放马大泽中，草好马著膘。", author="无名氏")]  # '' and 无名氏: one author
    annotated, groups = build_groups(poems)
    by_name = {g.name: g for g in groups}
    # 五音曲: the same poem twice (two files, two labels) is one member, so no group
    assert set(by_name) == {"企喻歌", "华山畿", "赠马明生诗"}
    assert (by_name["企喻歌"].size, by_name["企喻歌"].count, by_name["企喻歌"].stated_size) == (3, 3, None)
    assert [m[0] for m in by_name["企喻歌"].members] == ["其一", "其二", "其四"]  # in member order
    assert (by_name["华山畿"].size, by_name["华山畿"].count) == (2, 25)
    assert by_name["赠马明生诗"].count == 2 and by_name["赠马明生诗"].size == 1
    assert by_name["华山畿"].id == "poemgroup:华山畿二十五首"
    text = by_name["华山畿"].text()
    assert text.startswith("《华山畿二十五首》组诗 隋·无名氏") and "共25首" in text and "本库收录2首" in text
    first = next(p for p in annotated if p.id == "poem:3")
    assert (first.group, first.group_label, first.group_size) == ("poemgroup:华山畿二十五首", "其二", 25)
    assert next(p for p in annotated if p.id == "poem:9").group == ""
    assert "组诗《华山畿二十五首》共25首之其二" in first.facts_line()
    assert set(first.facts()) == {"id", "title", "author", "content", "dynasty", "collection", "group",
                                  "group_label", "group_size"}
    assert set(first.to_dict()) == {"id", "title", "author", "content"}  # the fixed CLI format is unchanged


# ------------------------------------------------------------------ lexicon
TOY = [("皇帝在宫中去世", "帝崩于宫"), ("太后去世", "太后崩"), ("大臣去世", "大臣卒"), ("将军去世", "将军卒"),
       ("皇帝派使者", "帝遣使"), ("太后派大臣", "太后遣大臣"), ("将军派使者", "将军遣使"), ("皇帝在宫中", "帝在宫"),
       ("将军打败敌人", "将军破敌"), ("大臣打败叛军", "大臣破贼"), ("皇帝打败突厥", "帝破突厥")]


class _CharTokenizer:
    """Words = the toy's modern words (longest first) or characters; the real tokenizer is jieba."""

    WORDS = ("去世", "皇帝", "太后", "大臣", "将军", "使者", "打败", "敌人", "宫中", "叛军", "突厥")

    def plain_words(self, text):
        out, i = [], 0
        while i < len(text):
            word = next((w for w in self.WORDS if text.startswith(w, i)), text[i])
            out.append(word)
            i += len(word)
        return out

    def content_words(self, text):
        return [w for w in self.plain_words(text) if w not in ("在", "的")]


def test_model1_learns_which_classical_word_a_modern_word_translates():
    lexicon = Lexicon.learn(TOY, _CharTokenizer(), LexiconParams(min_count=2))
    assert [f for f, _ in lexicon.forms("去世")][:2] in (["崩", "卒"], ["卒", "崩"])
    assert lexicon.forms("派")[0][0] == "遣"
    assert lexicon.forms("打败")[0][0] == "破"
    # a modern word is not mapped to itself or to its own characters, nor to function characters
    assert all(f not in ("于", "在") for forms in lexicon.entries.values() for f, _ in forms)
    assert all(0 < p <= 1 for forms in lexicon.entries.values() for _, p in forms)


def test_model1_is_deterministic_and_normalised():
    modern = [["去世", "皇帝"], ["去世", "大臣"]]
    classical = [["崩", "帝"], ["卒", "臣"]]
    m_vocab, _c_vocab, pair_e, _pair_f, t, m_lines = train_model1(modern, classical, 5)
    again = train_model1(modern, classical, 5)
    assert (t == again[4]).all() and m_vocab[0] == "<NULL>" and list(m_lines[1:]) == [2, 1, 1]
    for e in range(len(m_vocab)):  # t(.|e) sums to 1 over the classical words seen with e
        assert t[pair_e == e].sum() == pytest.approx(1.0)


def test_lexicon_expand_skips_mapped_words_and_weak_single_characters(tmp_path):
    lexicon = Lexicon({"去世": [("崩", 0.6), ("卒", 0.4)], "卢": [("贲", 0.13)], "派": [("遣", 0.69)],
                       "死": [("卒", 0.5)]}, {"format": 1})
    assert lexicon.expand(["去世", "卢", "派"]) == [("遣", 0.69), ("崩", 0.6), ("卒", 0.4)]
    assert lexicon.expand(["去世", "死"], skip=["去世"]) == [("卒", 0.5)]
    lexicon.save(tmp_path / "lexicon.json")
    assert Lexicon.load(tmp_path / "lexicon.json").entries == lexicon.entries


# ------------------------------------------------------------------ evaluation of multi-fact questions
def test_a_multi_fact_question_is_a_hit_only_when_every_fact_is_found(tmp_path):
    results = [Passage("suishu:卷2:40", "suishu", "", "丁未，崩于大宝殿，时年六十四。"),
               Passage("poem:sui#61", "poem", "", "空梁落燕泥"),
               Passage("suishu:卷2:41", "suishu", "", "葬于太陵。")]
    death = [{"source": "suishu:卷2", "evidence": "崩于大宝殿"}]
    burial = [{"source": "suishu:卷2", "evidence": "葬于太陵"}]
    assert covering_rank(results, [death]) == 0
    assert covering_rank(results, [death, burial]) == 2
    assert covering_rank(results[:2], [death, burial]) is None
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "a", "question": "q", "expected": death},
        {"id": "b", "question": "q", "shape": "multi", "facts": [death, burial]}]), encoding="utf-8")
    legacy, multi = load_questions(path)
    assert ((legacy.facts, legacy.shape) == ([death], "legacy")
            and (multi.facts, multi.shape) == ([death, burial], "multi"))
