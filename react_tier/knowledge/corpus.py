"""Turns the vendored files into passages (histories, biographies, poems) and poems (for verse lookup).

Passage ids (stable for the same data and window settings):
- ``suishu:卷N:W`` / ``zztj:卷N:W``: window W (0-based) of juan N (隋书 standard numbering 1-85; 资治通鉴 177-184).
  A window is a run of whole classical sentences of about ``window_chars`` characters, starting every
  ``window_stride_chars``; the modern translations of the sentences it covers follow it (after 【译文】).
- ``bio:<name>``: a 全唐诗 author biography (traditional text kept; indexed in simplified).
- ``poem:<record id>``: a poem, e.g. ``poem:sui#38`` (data2/隋.json), ``poem:隋末唐初#5``.
- ``poemgroup:<base title>``: a poem group (组诗) with its count and members (:mod:`.poem_groups`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from react_tier.knowledge.models import Poem
from react_tier.knowledge.poem_groups import PoemGroup
from react_tier.knowledge.text import compact, search_form, split_sentences, to_simplified

# Data files, relative to the data dir. Their hashes key the cache.
SUISHU_CLASSICAL = "knowledge/book_of_sui/suishu_classical.jsonl"
SUISHU_BILINGUAL = "knowledge/book_of_sui/suishu_bilingual.jsonl"
ZZTJ_CLASSICAL = "knowledge/zizhi_tongjian_sui/zztj_suiji_classical.jsonl"
ZZTJ_BILINGUAL = "knowledge/zizhi_tongjian_sui/zztj_suiji_bilingual.jsonl"
BIOGRAPHIES = "knowledge/biographies/authors_tang_mentioning_sui.json"
POEMS_DATA2_SUI = "poetry-qa/data2/隋.json"
POEMS_DATA2_NANBEICHAO = "poetry-qa/data2/南北朝.json"
POEMS_SUI = "knowledge/sui_poems/隋.jsonl"
POEMS_SUI_TANG = "knowledge/sui_poems/隋末唐初.jsonl"

DATA_FILES = (SUISHU_CLASSICAL, SUISHU_BILINGUAL, ZZTJ_CLASSICAL, ZZTJ_BILINGUAL, BIOGRAPHIES,
              POEMS_DATA2_SUI, POEMS_DATA2_NANBEICHAO, POEMS_SUI, POEMS_SUI_TANG)

MODERN_MARK = "【译文】"
# the collection a poem record comes from, as the agent may name it
COLLECTIONS = {POEMS_DATA2_SUI: "隋诗（data2/隋.json）", POEMS_SUI: "隋诗（Werneror 隋.csv）",
               POEMS_SUI_TANG: "隋末唐初诗（Werneror 隋末唐初.csv）",
               POEMS_DATA2_NANBEICHAO: "南北朝诗（data2/南北朝.json）"}


@dataclass
class Document:
    """A passage before indexing: ``search_pieces`` (simplified) are what gets tokenised, piece by piece (the
    overlapping windows share sentences, so the builder tokenises each distinct piece once)."""

    id: str
    source: str
    title: str
    text: str
    search_pieces: tuple[str, ...]
    # the window's own sentences (those before the next window starts), each "heading + classical sentence +
    # its modern translation" in search form: the child units of the sentence index (see index.py)
    sentence_units: tuple[str, ...] = ()


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _align_translations(sentences: list[str], pairs: list[dict]) -> list[list[str]]:
    """For each classical sentence, the modern translations whose classical line starts inside it.

    The bilingual lines are located in order in the juan's compacted text; a line that cannot be found (the
    automatic alignment shifted a few) is attached where the previous one ended.
    """
    starts, pos = [], 0
    for sentence in sentences:
        starts.append(pos)
        pos += len(compact(sentence))
    full = "".join(compact(s) for s in sentences)
    attached: list[list[str]] = [[] for _ in sentences]
    cursor, sentence_index = 0, 0
    for pair in pairs:
        needle = compact(pair["classical"])
        modern = pair["modern"].strip()
        if not modern:
            continue
        found = full.find(needle, cursor) if needle else -1
        if found >= 0:
            cursor = found + len(needle)
        else:
            found = max(cursor - 1, 0)  # the end of the previous line
        while sentence_index + 1 < len(starts) and starts[sentence_index + 1] <= found:
            sentence_index += 1
        attached[sentence_index].append(modern)
    return attached


def _windows(lengths: list[int], window_chars: int, stride_chars: int) -> list[tuple[int, int]]:
    """[start, end) sentence ranges: each about window_chars long, starting about every stride_chars."""
    n = len(lengths)
    offsets = [0]
    for length in lengths:
        offsets.append(offsets[-1] + length)
    ranges: list[tuple[int, int]] = []
    start = 0
    while start < n:
        end = start + 1
        while end < n and offsets[end] - offsets[start] < window_chars:
            end += 1
        ranges.append((start, end))
        if end >= n:
            break
        nxt = start + 1
        while nxt < end and offsets[nxt] - offsets[start] < stride_chars:
            nxt += 1
        start = nxt
    return ranges


HEADING_NAME = re.compile(r"^○?\s*([\u4e00-\u9fff]{2,4})，字")
HEADING_MARK = re.compile(r"^○\s*([^\s，。○]{1,12})")
ZZTJ_YEAR = re.compile(r"^[^，。（]{0,12}?((?:开皇|仁寿|大业|义宁|皇泰|武德)"
                       r"[元一二三四五六七八九十]+年（[^）]{0,20}）)")


def _paragraph_heading(paragraph: str, source: str) -> str | None:
    """The subject a paragraph opens: a 资治通鉴 year line, a 隋书 biography (``X，字``) or a short title line."""
    paragraph = paragraph.strip()
    if source == "zztj":
        match = ZZTJ_YEAR.match(paragraph)
        return match.group(1) if match else None
    if len(paragraph) <= 14 and not any(p in paragraph for p in "，。；：:曰"):  # not a speech's opening
        return paragraph.lstrip("○").strip() or None
    match = HEADING_NAME.match(paragraph) or HEADING_MARK.match(paragraph)
    return match.group(1) if match else None


def history_documents(data_dir: Path, classical_file: str, bilingual_file: str, source: str,
                      window_chars: int, stride_chars: int) -> Iterator[Document]:
    """Sentence windows of every juan, each with the modern translation of its sentences. The title names the
    juan and the subject in force where the window starts (biography, 志 section, or 资治通鉴 year)."""
    pairs_by_juan: dict[int, list[dict]] = {}
    for pair in _read_jsonl(data_dir / bilingual_file):
        pairs_by_juan.setdefault(int(pair["juan_overall"]), []).append(pair)
    for record in _read_jsonl(data_dir / classical_file):
        juan = int(record["juan_overall"])
        sentences: list[str] = []
        headings: list[str] = []
        heading = record.get("first_line") or ""
        for paragraph in record["text"].split("\n"):
            heading = _paragraph_heading(paragraph, source) or heading
            for sentence in split_sentences(paragraph):
                sentences.append(sentence)
                headings.append(heading)
        if not sentences:
            continue
        pairs = sorted(pairs_by_juan.get(juan, []), key=lambda p: int(p["line"]))
        translations = _align_translations(sentences, pairs)
        section = "" if record["section_juan"].startswith(record["section"]) else record["section"]
        book = f"{record['book']}·{section}{record['section_juan']}"
        lengths = [len(compact(s)) for s in sentences]
        ranges = _windows(lengths, window_chars, stride_chars)
        for number, (start, end) in enumerate(ranges):
            owned_end = min(end, ranges[number + 1][0]) if number + 1 < len(ranges) else end
            units = tuple(search_form(f"{headings[i]} {sentences[i]} {''.join(translations[i])}")
                          for i in range(start, owned_end))
            classical = "".join(sentences[start:end])
            modern = "".join(m for ms in translations[start:end] for m in ms)
            text = f"{classical}\n{MODERN_MARK}{modern}" if modern else classical
            title = f"{book} {headings[start]}".strip()
            pieces = (title, *sentences[start:end], *(m for ms in translations[start:end] for m in ms))
            yield Document(id=f"{source}:卷{juan}:{number}", source=source, title=title, text=text,
                           search_pieces=tuple(search_form(p) for p in pieces), sentence_units=units)


def biography_documents(data_dir: Path) -> Iterator[Document]:
    records = json.loads((data_dir / BIOGRAPHIES).read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    for record in records:
        name = to_simplified(record["name"])
        seen[name] = seen.get(name, 0) + 1
        suffix = "" if seen[name] == 1 else f"#{seen[name]}"
        text = record["desc"]
        yield Document(id=f"bio:{name}{suffix}", source="bio", title=f"{record['name']}（全唐诗作者小传）",
                       text=text, search_pieces=(search_form(f"{record['name']} {text}"),))


def load_poems(data_dir: Path, extra_authors: tuple[str, ...]) -> list[Poem]:
    """Sui poems (data2/隋.json first, then the Werneror files' poems not already in it) and the 南北朝 poems of
    the poets in ``extra_authors``. Deduplicated by (title, content)."""
    poems: list[Poem] = []
    index_by_key: dict[tuple[str, str], int] = {}

    def add(record: dict, dynasty: str) -> None:
        key = (compact(record["title"]), compact(record["content"]))
        author = (record.get("author") or "").strip()
        if key in index_by_key:
            i = index_by_key[key]
            if not poems[i].author and author:  # Werneror names the anonymous poems 无名氏
                poems[i] = replace(poems[i], author=author)
            return
        index_by_key[key] = len(poems)
        poems.append(Poem(id=f"poem:{record['id']}", title=record["title"].strip(), author=author,
                          content=record["content"].strip(), dynasty=record.get("dynasty") or dynasty,
                          collection=collection))

    collection = COLLECTIONS[POEMS_DATA2_SUI]
    for record in json.loads((data_dir / POEMS_DATA2_SUI).read_text(encoding="utf-8")):
        add(record, "隋")
    collection = COLLECTIONS[POEMS_SUI]
    for record in _read_jsonl(data_dir / POEMS_SUI):
        add(record, "隋")
    collection = COLLECTIONS[POEMS_SUI_TANG]
    for record in _read_jsonl(data_dir / POEMS_SUI_TANG):
        add(record, "隋末唐初")
    wanted = set(extra_authors)
    collection = COLLECTIONS[POEMS_DATA2_NANBEICHAO]
    for record in json.loads((data_dir / POEMS_DATA2_NANBEICHAO).read_text(encoding="utf-8")):
        if record.get("author") in wanted:
            add(record, "南北朝")
    return poems


def poem_documents(poems: list[Poem]) -> Iterator[Document]:
    for poem in poems:
        author = poem.author or "无名氏"
        text = f"《{poem.title}》 {poem.dynasty}·{author}\n{poem.content}"
        yield Document(id=poem.id, source="poem", title=f"{poem.title}（{author}）", text=text,
                       search_pieces=(search_form(text),))


def poem_group_documents(groups: list[PoemGroup]) -> Iterator[Document]:
    for group in groups:
        text = group.text()
        yield Document(id=group.id, source="poemgroup", title=f"{group.title}（组诗，{group.author or '无名氏'}）",
                       text=text, search_pieces=(search_form(text),))
