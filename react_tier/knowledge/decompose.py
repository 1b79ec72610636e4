"""Query decomposition: split a question that asks several things into one sub-query per fact.

"隋文帝去世时多少岁，葬在什么陵？" asks two facts that sit in different passages; one BM25 query ranks the passage
that matches most words first and can leave the other out of the top 5. Rules, no model:

1. Cut at sentence ends (。？！；?!;) and at commas, and also before a conjunction that opens a new question
   (以及 / 并且 / 另外 / 同时 / 还有 / 又是 / 后来又).
2. A clause is a question of its own when it holds a question word (哪 / 什么 / 谁 / 几 / 多少 / 多大 / 怎么 / 如何 /
   为什么 / 为何 / 是否 / 吗 / 何); a clause without one (a setting such as "隋军攻进建康城时") is glued to the
   clause after it, the last one to the clause before it.
3. A later clause that names no subject of its own (it starts with a pronoun or conjunction 他/她/其/这位/又,
   or its first content word is shorter than three characters, e.g. "葬在什么陵", "死后的谥号") gets the
   subject of the first question: the first content word (two if the first is one character) of its asking
   clause (in "隋军攻进建康城时，陈后主躲到了哪里" that is 陈后主, not the setting's 隋军).

Fewer than two question clauses = no decomposition (the caller searches the question as it is).
"""

from __future__ import annotations

import re

QUESTION_WORD = re.compile(r"哪|什么|谁|几|多少|多大|多久|多长|多远|怎么|怎样|如何|为什么|为何|是否|吗|何")
CLAUSE_CUT = re.compile(r"[。？！；?!;，,、]|(?=以及|并且|另外|同时|还有|后来又|又是)")
PRONOUN_START = re.compile(r"^(?:以及|并且|另外|同时|还有|后来又|后来|又是|又|那么|而且|并"
                           r"|他|她|其|该|此|这位|这个|那位)")
MAX_PARTS = 4


def _clauses(question: str) -> list[str]:
    pieces = [p.strip() for p in CLAUSE_CUT.split(question)]
    return [p for p in pieces if p]


def _content_words(text: str, words_of) -> list[str]:
    from react_tier.knowledge.text import QUERY_STOPWORDS

    return [w for w in words_of(text) if w not in QUERY_STOPWORDS and not QUESTION_WORD.search(w)]


def _subject(clause: str, words_of) -> str:
    """The first content word of ``clause`` (two if the first is a single character): a question's subject
    leads it (隋文帝 / 韩擒虎 / 尚书省); a name jieba splits (郭子|和) still shares its bigrams with the text."""
    words = _content_words(clause, words_of)
    if not words:
        return ""
    return words[0] if len(words[0]) >= 2 or len(words) == 1 else words[0] + words[1]


def decompose(question: str, words_of=None) -> list[str]:
    """Sub-queries, one per question clause (2-4 of them), or [] when the question asks one thing.

    ``words_of(text) -> list[str]`` splits a clause into words (the knowledge base passes jieba's); the default
    splits into characters (then a subject is its first two characters).
    """
    words_of = words_of or list
    groups: list[str] = []
    asking: list[str] = []  # the clause of each group that holds the question word
    pending = ""
    for clause in _clauses(question):
        if QUESTION_WORD.search(clause):
            groups.append(pending + clause)
            asking.append(clause)
            pending = ""
        else:
            pending += clause
    if pending:
        if groups:
            groups[-1] += pending
        else:
            return []
    if len(groups) < 2:
        return []
    groups = groups[:MAX_PARTS]
    subject = _subject(asking[0], words_of)
    parts = [groups[0]]
    for clause in groups[1:]:
        stripped = PRONOUN_START.sub("", clause)
        first = next(iter(_content_words(stripped, words_of)), "")
        # a clause that opens with a pronoun, or whose first content word is short (a verb, 死后, 改), has no
        # subject of its own; one that opens with a longer word (永济渠, 冼夫人) keeps its own
        if subject and subject not in clause and (stripped != clause or len(first) < 3):
            clause = subject + stripped
        parts.append(clause)
    return parts
