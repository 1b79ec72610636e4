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
    """One poem; ``id`` is ``poem:<record id>`` of the vendored file (e.g. ``poem:sui#38``).

    Structured facts: ``collection`` (the vendored collection it comes from), and for a member of a poem group
    (组诗, see :mod:`react_tier.knowledge.poem_groups`) the group's id, this poem's label in it (其三) and
    ``group_size``, the number of poems that make up the group (the count its title states, else the members
    present)."""

    id: str
    title: str
    author: str
    content: str
    dynasty: str = ""
    collection: str = ""
    group: str = ""
    group_label: str = ""
    group_size: int = 0

    def to_dict(self) -> dict:
        """The fixed CLI / tool format (``suiqa kb poem --json``)."""
        return {"id": self.id, "title": self.title, "author": self.author, "content": self.content}

    def facts(self) -> dict:
        """to_dict() plus the structured fields: dynasty, collection, group, group_label, group_size."""
        return {**self.to_dict(), "dynasty": self.dynasty, "collection": self.collection, "group": self.group,
                "group_label": self.group_label, "group_size": self.group_size}

    def facts_line(self) -> str:
        """One line for an agent observation: ``隋·薛道衡；出自 …；组诗《…》共N首之其三`` (empty parts left out)."""
        parts = [f"{self.dynasty}·{self.author or '无名氏'}" if self.dynasty else (self.author or "无名氏")]
        if self.collection:
            parts.append(f"出自{self.collection}")
        if self.group:
            label = f"之{self.group_label}" if self.group_label else ""
            parts.append(f"组诗《{self.group.split(':', 1)[1].split('#')[0]}》共{self.group_size}首{label}")
        return "；".join(parts)
