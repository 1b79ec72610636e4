"""Poem lookup by any line of verse, title or author: exact (punctuation-blind substring) first, then fuzzy
(rapidfuzz) so a misremembered or traditional-character line still finds its poem."""

from __future__ import annotations

import re

from rapidfuzz import fuzz, process

from react_tier.knowledge.models import Poem
from react_tier.knowledge.text import compact, search_form

# What a user calls a poet -> the name in the poem files.
AUTHOR_ALIASES = {"隋炀帝": "杨广", "炀帝": "杨广", "隋文帝": "杨坚", "文帝": "杨坚", "陈后主": "陈叔宝",
                  "后主": "陈叔宝", "唐太宗": "李世民", "太宗": "李世民", "无名氏": ""}

FUZZY_CUTOFF = 60.0
VERSE_BREAK = re.compile(r"[，,。.！!？?；;、\s]+")


class PoemIndex:
    """Read-only after construction, so safe for concurrent lookups."""

    def __init__(self, poems: list[Poem]) -> None:
        self.poems = poems
        self._contents = [compact(search_form(p.content)) for p in poems]
        self._titles = [compact(search_form(p.title)) for p in poems]
        self._authors = [compact(search_form(p.author)) for p in poems]
        self._lines: list[str] = []
        self._line_owner: list[int] = []
        for i, poem in enumerate(poems):
            for piece in VERSE_BREAK.split(search_form(poem.content)):
                line = compact(piece)
                if line:
                    self._lines.append(line)
                    self._line_owner.append(i)

    def _author_matches(self, author: str) -> set[int]:
        wanted = AUTHOR_ALIASES.get(author, author)
        exact = {i for i, a in enumerate(self._authors) if a == wanted}
        if exact:
            return exact
        return {i for i, a in enumerate(self._authors)
                if a and (wanted in a or fuzz.ratio(wanted, a) >= 80)}

    def _text_scores(self, text: str) -> dict[int, float]:
        scores: dict[int, float] = {i: 100.0 for i, c in enumerate(self._contents) if text in c}
        for line, score, pos in process.extract(text, self._lines, scorer=fuzz.ratio,
                                                score_cutoff=FUZZY_CUTOFF, limit=50):
            owner = self._line_owner[pos]
            scores[owner] = max(scores.get(owner, 0.0), float(score))
        if len(text) > 8:  # several lines: compare with whole poems too
            for _, score, pos in process.extract(text, self._contents, scorer=fuzz.partial_ratio,
                                                 score_cutoff=FUZZY_CUTOFF, limit=50):
                scores[pos] = max(scores.get(pos, 0.0), float(score))
        return scores

    def _title_scores(self, title: str) -> dict[int, float]:
        scores: dict[int, float] = {}
        for i, t in enumerate(self._titles):
            if t == title:
                scores[i] = 100.0
            elif title in t or (t and t in title):
                scores[i] = 90.0
        for _, score, pos in process.extract(title, self._titles, scorer=fuzz.ratio,
                                             score_cutoff=FUZZY_CUTOFF, limit=50):
            scores[pos] = max(scores.get(pos, 0.0), float(score))
        return scores

    def lookup(self, text: str | None, title: str | None, author: str | None, k: int) -> list[Poem]:
        """Poems best first; each given criterion must match (author exactly or nearly, text/title fuzzily)."""
        candidates: set[int] | None = None
        if author:
            candidates = self._author_matches(compact(author))
        parts: list[dict[int, float]] = []
        if text:
            parts.append(self._text_scores(compact(text)))
        if title:
            parts.append(self._title_scores(compact(title)))
        if not parts:  # author only: their poems in file order
            return [self.poems[i] for i in sorted(candidates or ())][:k]
        combined: dict[int, float] = {}
        for i in set.intersection(*(set(p) for p in parts)):
            if candidates is None or i in candidates:
                combined[i] = sum(p[i] for p in parts) / len(parts)
        ranked = sorted(combined, key=lambda i: (-combined[i], i))
        return [self.poems[i] for i in ranked[:k]]
