"""The records the knowledge base hands out, and its one error type."""

from __future__ import annotations

from dataclasses import dataclass

from suiqa.errors import SuiqaError


class KnowledgeQueryError(SuiqaError, ValueError):
    """The query cannot be searched: empty, too long, or no searchable characters (binary junk)."""


@dataclass(frozen=True)
class Passage:
    """One searchable unit. ``id`` is stable across rebuilds of the same data (use it for citations).

    ``source`` is the collection (``suishu``, ``zztj``, ``poem``, ``bio``); ``text`` is what the agent is shown
    (for the histories: the classical window, then the modern translation where one exists).
    """

    id: str
    source: str
    title: str
    text: str
    score: float = 0.0

    def to_dict(self) -> dict:
        return {"id": self.id, "source": self.source, "title": self.title, "text": self.text,
                "score": round(float(self.score), 4)}


@dataclass(frozen=True)
class Poem:
    """One poem; ``id`` is ``poem:<record id>`` of the vendored file (e.g. ``poem:sui#38``)."""

    id: str
    title: str
    author: str
    content: str
    dynasty: str = ""

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "author": self.author, "content": self.content}
