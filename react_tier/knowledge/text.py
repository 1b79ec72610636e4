"""Text normalisation and tokenisation shared by the index builder and the query side.

Everything searchable goes through :func:`search_form`: OpenCC t2s (:func:`to_simplified`) so that traditional
and simplified queries and documents meet, then :func:`fold_variants` for the variant characters (异体字) OpenCC
leaves alone (the 资治通鉴 text writes 张须陁 and 阎毘, its translation and the 隋书 张须陀 and 阎毗); two token
streams feed two BM25 rankings: jieba words and character bigrams.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_RUN = re.compile(f"[{_CJK}]+")
SEARCHABLE = re.compile(f"[{_CJK}A-Za-z0-9]")
WORD_CHAR = re.compile(f"[{_CJK}A-Za-z0-9]")
SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|\n")
PUNCT_AND_SPACE = re.compile(f"[^{_CJK}A-Za-z0-9]+")

# Function words and question words of a modern question; they carry no evidence.
QUERY_STOPWORDS = frozenset(
    ["的", "了", "是", "吗", "呢", "吧", "啊", "什么", "哪", "哪个", "哪些", "哪里", "哪儿", "哪一", "谁", "怎么",
     "怎样", "如何", "为什么", "为何", "有", "有没有", "在", "和", "与", "及", "请问", "一下", "几", "多少", "时候",
     "什么时候", "被", "把", "他", "她", "它", "他们", "她们", "这", "那", "这个", "那个", "个", "一", "之", "也", "都",
     "就", "对", "从", "给", "让", "以及", "或", "或者", "还", "又", "呀", "么", "所", "而", "则", "其", "于", "为",
     "曾", "曾经", "当时", "当", "后来", "历史", "上", "中", "说", "叫", "叫做", "称为", "是否", "哪位", "哪一年",
     "哪年", "一位", "位", "人", "事", "事情", "关于", "有关", "介绍", "讲讲", "简述", "隋朝", "隋代", "一年", "多大",
     "多长", "多久", "年纪", "几岁", "哪座", "哪位", "怎么样", "什么样", "时", "到", "过", "能", "去", "下", "一个",
     "分", "最后", "后", "后来", "原因", "因为", "是因为", "受到", "地方", "什么地方", "分别", "做", "做过", "哪天",
     "哪一天", "正式", "主要", "出自", "之手", "那里", "这里", "哪些", "几个", "各", "各有", "怎样", "办法", "用",
     "是用", "开始", "最终", "结局", "如何", "多少岁", "座", "多少", "得", "地", "着", "你", "我", "知道", "一些",
     "方面", "情况", "具体", "时期", "期间", "朝代", "朝", "皇朝"])


@lru_cache(maxsize=1)
def _converter():
    import opencc

    return opencc.OpenCC("t2s")


_converter_lock = threading.Lock()


def to_simplified(text: str) -> str:
    """Traditional -> simplified (idempotent on simplified text); NFKC first (full-width forms)."""
    text = unicodedata.normalize("NFKC", text)
    with _converter_lock:  # the OpenCC object is not documented as thread-safe
        return _converter().convert(text)


# Variant character -> the standard simplified form, for variants that OpenCC t2s keeps as they are (or maps to a
# rare CJK-extension form, the keys 𪨷 𠡠 𬬻 𫖯 𫗪 𫜪 悮). Common 异体字 of classical texts, not a list fitted to
# the questions; applied to documents and queries alike, so a match never depends on which form either side uses.
_VARIANT_PAIRS = (
    "陁陀 毘毗 嵒岩 𪨷岩 粃秕 幙幕 躭耽 猨猿 徧遍 觕粗 刦劫 刼劫 肻肯 珤宝 皜皓 鵶鸦 袠帙 詶酬 醻酬 雝雍 稾稿 槀稿 "
    "惣总 揔总 捴总 緫总 総总 荅答 砲炮 甞尝 鴈雁 竝并 畧略 吿告 衞卫 淸清 靑青 勅敕 𠡠敕 厯历 歴历 暦历 兾冀 歳岁 "
    "凖准 隣邻 廼乃 迺乃 疎疏 畱留 壻婿 皷鼓 觧解 恡吝 僊仙 筭算 氷冰 匃丐 匄丐 丒丑 乆久 凢凡 囙因 囬回 囘回 廻回 "
    "冩写 兎兔 玆兹 効效 劒剑 劔剑 釰剑 峩峨 帋纸 廐厩 廏厩 彜彝 彞彝 恠怪 悮误 憇憩 挍校 捄救 攷考 敺驱 昬昏 朞期 "
    "栢柏 桒桑 碁棋 槩概 槪概 欵款 歛敛 殀夭 淛浙 灋法 烖灾 熈熙 煑煮 牋笺 甎砖 畊耕 疉叠 瘉愈 盌碗 稺稚 穉稚 窻窗 "
    "筯箸 箒帚 罇樽 胷胸 舩船 艸草 葢盖 蔕蒂 虵蛇 蠏蟹 衂衄 衺邪 袵衽 覩睹 諠喧 讁谪 賸剩 軄职 輭软 迯逃 逓递 遯遁 "
    "邨村 鎗枪 𬬻炉 隄堤 黙默 鼈鳖 䝉蒙 叚段 嫰嫩 敍叙 鬬斗 鬭斗 鬪斗 菓果 咲笑 坵丘 姉姊 媿愧 掽碰 揷插 沍冱 涖莅 "
    "滛淫 犇奔 耡锄 鉏锄 荳豆 頼赖 𫖯俯 𫗪喂 𫜪咬 鵞鹅 娬妩 磵涧 秔粳 粇粳 慙惭 譌讹 搆构 麤粗 麁粗 躰体 軆体 眎视 "
    "眡视 鬴釜 銕铁 鐡铁 虖乎"
)
VARIANT_FOLDS = str.maketrans({pair[0]: pair[1] for pair in _VARIANT_PAIRS.split()})


def fold_variants(text: str) -> str:
    """Variant characters (异体字) -> their standard simplified form (陁 -> 陀, 毘 -> 毗); run after t2s."""
    return text.translate(VARIANT_FOLDS)


def search_form(text: str) -> str:
    """The form in which documents are indexed and queries searched: simplified, variants folded."""
    return fold_variants(to_simplified(text))


def compact(text: str) -> str:
    """Only CJK, Latin letters and digits: the form used for substring matching of verse and alignment."""
    return PUNCT_AND_SPACE.sub("", text)


def split_sentences(text: str) -> list[str]:
    """Sentences ending in 。！？； or a line break, whitespace-trimmed, empty ones dropped."""
    return [s.strip() for s in SENTENCE_END.split(text) if s and s.strip()]


def char_bigrams(text: str) -> list[str]:
    """Overlapping character bigrams of every CJK run; a one-character run gives that character."""
    grams: list[str] = []
    for run in CJK_RUN.findall(text):
        if len(run) == 1:
            grams.append(run)
        else:
            grams.extend(run[i:i + 2] for i in range(len(run) - 1))
    return grams


class WordTokenizer:
    """jieba words (no HMM: deterministic and twice as fast; classical text gains nothing from it).

    One private ``jieba.Tokenizer`` per instance; after :meth:`initialize` its ``lcut`` only reads the
    dictionary, so concurrent readers are safe.
    """

    def __init__(self, extra_words: tuple[str, ...] = ()) -> None:
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)
        self._tokenizer = jieba.Tokenizer()
        self._tokenizer.initialize()
        for word in extra_words:
            self._tokenizer.add_word(word, freq=2000)

    def words(self, text: str) -> list[str]:
        """Words of a passage; like a query's, a word of 3+ characters also gives its dictionary sub-words,
        so that 从军 in a question meets the title 《从军行》 (jieba's search mode on both sides)."""
        out = []
        for w in self._tokenizer.lcut(text, HMM=False):
            if WORD_CHAR.search(w):
                out.extend(self._sub_words(w))
                out.append(w)
        return out

    def _sub_words(self, word: str, stopwords: frozenset[str] = frozenset()) -> list[str]:
        freq = self._tokenizer.FREQ
        return [g for n in (2, 3) if len(word) > n
                for g in (word[i:i + n] for i in range(len(word) - n + 1)) if freq.get(g) and g not in stopwords]

    def plain_words(self, text: str) -> list[str]:
        """jieba words with a Chinese/Latin/digit character, nothing added or removed (lexicon training)."""
        return [w for w in self._tokenizer.lcut(text, HMM=False) if WORD_CHAR.search(w)]

    def content_words(self, text: str) -> list[str]:
        """jieba words minus the question function words, no sub-words (lexicon training, modern side)."""
        return [w for w in self.plain_words(text) if w not in QUERY_STOPWORDS]

    def query_words(self, text: str) -> list[str]:
        """Words of a query, stopwords removed; a kept word of 3+ characters also gives its dictionary
        sub-words (jieba's search mode, applied after the stopword filter so 多大 does not leave 多, 大)."""
        out = []
        for w in self._tokenizer.lcut(text, HMM=False):
            if not WORD_CHAR.search(w) or w in QUERY_STOPWORDS:
                continue
            out.extend(self._sub_words(w, QUERY_STOPWORDS))
            out.append(w)
        return out


def clean_query(raw: object, max_chars: int) -> str:
    """Validate a user query and return it in :func:`search_form` (control characters removed).

    Raises KnowledgeQueryError for a non-string, an empty or over-long query, or one without any searchable
    character (binary junk).
    """
    from react_tier.knowledge.models import KnowledgeQueryError

    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        raise KnowledgeQueryError(f"query must be text, got {type(raw).__name__}")
    if len(raw) > max_chars:
        raise KnowledgeQueryError(f"query too long: {len(raw)} characters (limit {max_chars})")
    text = "".join(ch for ch in raw if unicodedata.category(ch)[0] != "C" or ch in "\n\t").strip()
    if not text:
        raise KnowledgeQueryError("empty query: give a question or keywords")
    if not SEARCHABLE.search(text):
        raise KnowledgeQueryError("query has no searchable characters (Chinese, letters or digits)")
    return search_form(text)
