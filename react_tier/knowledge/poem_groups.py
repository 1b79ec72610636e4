"""Poem groups (组诗): structured facts that live in the records' titles, not in their text.

A record titled ``读曲歌八十九首 其八十一`` is poem 81 of the group 《读曲歌八十九首》, whose title states 89
poems; ``齐明堂乐歌十五首 肃咸乐谢超宗`` is the member 肃咸乐谢超宗 of a group that states 15 (14 are in the
data); ``企喻歌 其一`` / ``其四`` are two members of 《企喻歌》, whose size the title does not state. The base
title is the part before the first space; a group is (base title, author) with two or more members or a stated
count. Of the 1,922 poems in the index, 930 belong to 143 groups (the largest: 读曲歌 89, 华山畿 25).

"How many poems make up 《X》" is then answered from these fields: the stated count (题称) where the title gives
one, else the members present; each group is also indexed as one passage (``poemgroup:<base title>``) listing
its members, so counting and list questions retrieve it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from react_tier.knowledge.models import Poem
from react_tier.knowledge.text import compact

_NUMERAL = "零〇一二两三四五六七八九十百"
STATED = re.compile(f"([{_NUMERAL}]+)首")
MEMBER_NUMBER = re.compile(f"^其([{_NUMERAL}]+)")
_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
MAX_LISTED = 30  # members listed by first line in a group passage; the rest are counted only


def chinese_number(text: str) -> int | None:
    """十 -> 10, 二十五 -> 25, 八十九 -> 89, 一百零二 -> 102 (enough for poem counts); None if not a numeral."""
    if not text or any(ch not in _NUMERAL for ch in text):
        return None
    total, current = 0, 0
    for ch in text:
        if ch == "百":
            total += (current or 1) * 100
            current = 0
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        else:
            current = _DIGITS[ch]
    return total + current


def split_title(title: str) -> tuple[str, str]:
    """(base title, member label): ``读曲歌八十九首 其八十一`` -> (``读曲歌八十九首``, ``其八十一``)."""
    base, _, label = title.strip().partition(" ")
    return base.strip(), label.strip()


def group_name(base: str) -> str:
    """The group's short name: the base title without a trailing count (读曲歌八十九首 -> 读曲歌)."""
    return STATED.sub("", base) if STATED.search(base) and STATED.sub("", base) else base


@dataclass(frozen=True)
class PoemGroup:
    """A group of poems under one base title by one author. ``size`` counts the members in the data;
    ``stated_size`` is the count the title states (None if it states none)."""

    id: str
    title: str  # the base title, e.g. 读曲歌八十九首
    name: str  # without the count, e.g. 读曲歌
    author: str
    dynasty: str
    collection: str
    stated_size: int | None
    size: int
    members: tuple[tuple[str, str, str], ...]  # (label, poem id, first line), in member order

    @property
    def count(self) -> int:
        """How many poems make up the group: the stated count where there is one (and it is not below the
        members present, as in a title that names 一首 of something else), else the members present."""
        return self.stated_size if self.stated_size and self.stated_size >= self.size else self.size

    def text(self) -> str:
        author = self.author or "无名氏"
        stated = f"题目称{self.stated_size}首，" if self.stated_size else ""
        listed = "、".join(f"{label}「{line}」" if label else f"「{line}」"
                          for label, _, line in self.members[:MAX_LISTED])
        more = f"等{self.size}首" if self.size > MAX_LISTED else ""
        return (f"《{self.title}》组诗 {self.dynasty}·{author}\n《{self.name}》共{self.count}首（{stated}"
                f"本库收录{self.size}首，出自{self.collection}）：{listed}{more}")

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "name": self.name, "author": self.author,
                "dynasty": self.dynasty, "collection": self.collection, "count": self.count,
                "stated_size": self.stated_size, "size": self.size,
                "members": [{"label": label, "id": pid, "first_line": line} for label, pid, line in self.members]}


def _member_order(label: str) -> tuple[int, str]:
    match = MEMBER_NUMBER.match(label)
    number = chinese_number(match.group(1)) if match else None
    return (number if number is not None else 10_000, label)


def _first_line(content: str) -> str:
    return re.split(r"[，。！？；,.!?;]", content.strip(), maxsplit=1)[0][:16]


def build_groups(poems: list[Poem]) -> tuple[list[Poem], list[PoemGroup]]:
    """Annotate every poem of a group with its group fields; return (poems, groups) in file order."""
    keyed: dict[tuple[str, str], list[int]] = {}
    for i, poem in enumerate(poems):
        # data2 leaves anonymous poems' author empty where Werneror writes 无名氏: one author either way
        keyed.setdefault((split_title(poem.title)[0], poem.author or "无名氏"), []).append(i)
    poems = list(poems)
    groups: list[PoemGroup] = []
    used_ids: dict[str, int] = {}
    for (base, author), positions in keyed.items():
        # one record per poem: the same poem from two files, or as 其一 and as the group's unlabelled head
        # record, shares its opening (punctuation-blind); the labelled record wins (it carries the number)
        labelled: dict[str, int] = {}
        by_opening: dict[str, str] = {}
        for i in positions:
            label = split_title(poems[i].title)[1]
            opening = compact(poems[i].content)[:10]
            if opening in by_opening:
                if label and not by_opening[opening] and label not in labelled:
                    del labelled[by_opening[opening]]
                    labelled[label] = i
                    by_opening[opening] = label
                continue
            if label in labelled:
                continue
            labelled[label] = i
            by_opening[opening] = label
        stated = next((chinese_number(m.group(1)) for m in STATED.finditer(base)), None)
        if len(labelled) < 2 and not (stated and stated > 1):
            continue
        ordered = sorted(labelled.items(), key=lambda item: _member_order(item[0]))
        used_ids[base] = used_ids.get(base, 0) + 1
        gid = f"poemgroup:{base}" + ("" if used_ids[base] == 1 else f"#{used_ids[base]}")
        first = poems[positions[0]]
        group = PoemGroup(id=gid, title=base, name=group_name(base), author=author, dynasty=first.dynasty,
                          collection=first.collection, stated_size=stated, size=len(ordered),
                          members=tuple((label, poems[i].id, _first_line(poems[i].content)) for label, i in ordered))
        groups.append(group)
        for i in positions:
            poems[i] = replace(poems[i], group=gid, group_label=split_title(poems[i].title)[1],
                               group_size=group.count)
    return poems, groups
