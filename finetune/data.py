"""Instruction pairs generated from the poetry corpus (data/poetry-qa holds poems, not Q&A).

Every poem file becomes question–answer pairs of six kinds: who wrote 《X》, recite 《X》 by its author, which poem
(and poet) a line comes from, the line after a given line, the poems of a poet, and a poet's dynasty. Questions
whose answer the corpus does not determine (a title used by several poets, a line found in several poems) are
skipped, so no pair teaches a wrong fact. Sui poems (data2/隋.json) and all poems by Sui-era poets (anyone with a
poem in the Sui file, wherever else they appear) get every kind and several line questions each; the rest of the
corpus is sampled. Everything is seeded, so the same corpus and seed give byte-identical files.

Output: XTuner alpaca JSON (``instruction``/``input``/``output``) and chat-message JSONL (``messages``), split into
train and validation by a hash of the question (a question lands on the same side whatever else changes).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path

from suiqa.errors import SuiqaError

SUI = "隋"
SYSTEM_PROMPT = "你是一位精通中国古典诗词、尤其是隋代诗歌的助手。"

# Dynasty of each folder/file of data/poetry-qa (data2 files are named by dynasty). None: not poetry by a dynasty
# poet we can name (prose classics, primers), still used for recite / next-line questions.
_DATA_DYNASTIES = {
    "五代诗词": "五代",
    "全唐诗": "唐",
    "水墨唐诗": "唐",
    "宋词": "宋",
    "纳兰性德": "清",
    "曹操诗集": "汉",
    "楚辞": "先秦",
    "诗经": "先秦",
}
_DATA2_DYNASTIES = {"魏晋": "魏晋", "近现代末当代初": "近现代", "民国末当代初": "民国"}
_CLAUSE_END = re.compile(r"[，。！？；、,.!?;：:\n]+")
_ANNOTATION = re.compile(r"[（(][^）)]*[）)]|[「」『』“”‘’《》\[\]【】\s]")
KINDS = ("author", "recite", "line_source", "next_line", "poet_works", "dynasty")


@dataclass(frozen=True)
class Poem:
    title: str
    author: str
    content: str
    dynasty: str | None
    source: str

    @property
    def clauses(self) -> list[str]:
        """The poem's lines (clauses between punctuation), annotations and quote marks removed."""
        return [c for c in (_ANNOTATION.sub("", part) for part in _CLAUSE_END.split(self.content)) if c]


@dataclass
class Pair:
    kind: str
    instruction: str
    output: str
    input: str = ""
    sui: bool = False

    def alpaca(self) -> dict:
        return {"instruction": self.instruction, "input": self.input, "output": self.output}

    def chat(self) -> dict:
        user = f"{self.instruction}\n{self.input}" if self.input else self.instruction
        return {
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": user},
                {"role": "assistant", "content": self.output},
            ]
        }


@dataclass
class DataConfig:
    seed: int = 0
    val_fraction: float = 0.03
    lines_per_sui_poem: int = 3  # line_source + next_line questions per Sui / Sui-era poem
    other_poem_rate: float = 0.35  # share of other poems that get one (random-kind) question
    max_recite_chars: int = 400  # longer texts (prose classics) are not recited
    max_works_listed: int = 8
    min_clause_chars: int = 4


@dataclass
class DataStats:
    files: int = 0
    poems: int = 0
    pairs: int = 0
    train: int = 0
    val: int = 0
    duplicates_dropped: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    sui_pairs: int = 0
    sui_era_poets: int = 0


def _dynasty(path: Path, root: Path) -> str | None:
    rel = path.relative_to(root)
    if rel.parts[0] == "data2":
        return _DATA2_DYNASTIES.get(path.stem, path.stem)
    return _DATA_DYNASTIES.get(rel.parts[1] if len(rel.parts) > 2 else path.stem)


def load_poems(root: Path) -> tuple[list[Poem], int]:
    """All poems under ``root`` (every *.json file, sorted), with their dynasty; and the file count."""
    if not root.is_dir():
        raise SuiqaError(f"poetry data folder not found: {root}")
    files = sorted(root.rglob("*.json"))
    if not files:
        raise SuiqaError(f"no *.json poetry files in {root}")
    poems: list[Poem] = []
    for path in files:
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SuiqaError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(records, list):
            raise SuiqaError(f"{path}: expected a JSON array of poems, got {type(records).__name__}")
        dynasty = _dynasty(path, root)
        for rec in records:
            if not isinstance(rec, dict) or not str(rec.get("content", "")).strip():
                continue
            poems.append(
                Poem(
                    str(rec.get("title") or "").strip(),
                    str(rec.get("author") or "").strip(),
                    str(rec["content"]).strip(),
                    dynasty,
                    str(path.relative_to(root)),
                )
            )
    return poems, len(files)


class _Index:
    """Lookups that decide whether a question has one answer in the corpus."""

    def __init__(self, poems: list[Poem], cfg: DataConfig):
        self.title_authors: dict[str, set[str]] = defaultdict(set)
        self.title_author_count: Counter = Counter()
        self.clause_poems: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self.clause_next: dict[str, set[str]] = defaultdict(set)
        self.author_titles: dict[str, list[str]] = defaultdict(list)
        self.author_dynasties: dict[str, set[str]] = defaultdict(set)
        for p in poems:
            if p.title:
                self.title_authors[p.title].add(p.author)
                self.title_author_count[(p.title, p.author)] += 1
            clauses = [c for c in p.clauses if len(c) >= cfg.min_clause_chars]
            for c in clauses:
                self.clause_poems[c].add((p.title, p.author))
            all_clauses = p.clauses
            for a, b in pairwise(all_clauses):
                self.clause_next[a].add(b)
            if p.author:
                if p.title and p.title not in self.author_titles[p.author]:
                    self.author_titles[p.author].append(p.title)
                if p.dynasty:
                    self.author_dynasties[p.author].add(p.dynasty)
        self.sui_poets = {p.author for p in poems if p.dynasty == SUI and p.author}


def _author_pair(p: Poem, ix: _Index) -> Pair | None:
    if not (p.title and p.author) or ix.title_authors[p.title] != {p.author}:
        return None
    return Pair("author", f"《{p.title}》的作者是谁？", f"《{p.title}》的作者是{p.author}。")


def _recite_pair(p: Poem, ix: _Index, cfg: DataConfig) -> Pair | None:
    if (
        not p.title
        or ix.title_author_count[(p.title, p.author)] != 1
        or len(p.content) > cfg.max_recite_chars
    ):
        return None
    by = f"{p.author}的" if p.author else ""
    return Pair("recite", f"请背诵{by}《{p.title}》。", p.content)


def _line_pairs(p: Poem, ix: _Index, cfg: DataConfig, rng: random.Random, n: int) -> list[Pair]:
    clauses = p.clauses
    candidates = [i for i, c in enumerate(clauses) if len(c) >= cfg.min_clause_chars]
    out: list[Pair] = []
    for i in rng.sample(candidates, min(n, len(candidates))):
        line = clauses[i]
        if p.title and ix.clause_poems[line] == {(p.title, p.author)}:
            who = f"{p.author}的" if p.author else ""
            out.append(
                Pair(
                    "line_source", "下面这句诗出自哪首诗？作者是谁？", f"出自{who}《{p.title}》。", input=line
                )
            )
        if i + 1 < len(clauses) and ix.clause_next[line] == {clauses[i + 1]}:
            out.append(Pair("next_line", f"“{line}”的下一句是什么？", f"下一句是“{clauses[i + 1]}”。"))
    return out


def _poet_pairs(author: str, ix: _Index, cfg: DataConfig, rng: random.Random) -> list[Pair]:
    pairs: list[Pair] = []
    titles = ix.author_titles[author]
    if titles:
        shown = titles if len(titles) <= cfg.max_works_listed else rng.sample(titles, cfg.max_works_listed)
        more = f"等，共{len(titles)}首收录于语料中" if len(titles) > len(shown) else ""
        pairs.append(
            Pair(
                "poet_works",
                f"请列举{author}的几首诗作。",
                f"{author}的作品有：" + "、".join(f"《{t}》" for t in shown) + more + "。",
            )
        )
    dynasties = sorted(ix.author_dynasties[author])
    if len(dynasties) == 1:
        pairs.append(
            Pair(
                "dynasty",
                f"{author}是哪个朝代的诗人？",
                f"{author}是{dynasties[0]}代诗人。"
                if len(dynasties[0]) == 1
                else f"{author}是{dynasties[0]}时期的诗人。",
            )
        )
    elif SUI in dynasties:
        others = "、".join(d for d in dynasties if d != SUI)
        pairs.append(
            Pair(
                "dynasty",
                f"{author}是哪个朝代的诗人？",
                f"{author}生活在{others}至隋代，其诗作见于" + "、".join(dynasties) + "。",
            )
        )
    return pairs


def generate_pairs(poems: list[Poem], cfg: DataConfig) -> tuple[list[Pair], int]:
    """All pairs, deduplicated by question (the first answer wins); and how many duplicates were dropped."""
    rng = random.Random(cfg.seed)
    ix = _Index(poems, cfg)
    pairs: list[Pair] = []
    for p in poems:
        sui = p.dynasty == SUI or p.author in ix.sui_poets
        if sui:
            found = [_author_pair(p, ix), _recite_pair(p, ix, cfg)]
            found += _line_pairs(p, ix, cfg, rng, cfg.lines_per_sui_poem)
        elif rng.random() < cfg.other_poem_rate:
            kind = rng.choice(("author", "recite", "line"))
            found = (
                [_author_pair(p, ix)]
                if kind == "author"
                else [_recite_pair(p, ix, cfg)]
                if kind == "recite"
                else _line_pairs(p, ix, cfg, rng, 1)
            )
        else:
            found = []
        for pair in found:
            if pair is not None:
                pair.sui = sui
                pairs.append(pair)
    for author in sorted(ix.author_titles):
        sui = author in ix.sui_poets
        if sui or rng.random() < cfg.other_poem_rate:
            for pair in _poet_pairs(author, ix, cfg, rng):
                pair.sui = sui
                pairs.append(pair)
    seen: set[str] = set()
    unique: list[Pair] = []
    for pair in pairs:
        key = pair.instruction + "\n" + pair.input
        if key not in seen:
            seen.add(key)
            unique.append(pair)
    return unique, len(pairs) - len(unique)


def is_validation(pair: Pair, fraction: float) -> bool:
    digest = hashlib.sha256((pair.instruction + "\n" + pair.input).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def _write_json(path: Path, rows: list[dict]) -> None:
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def build_dataset(root: Path, out: Path, cfg: DataConfig = DataConfig()) -> DataStats:
    """Write train/val alpaca JSON + chat JSONL and stats.json to ``out``; return the stats."""
    from tqdm import tqdm

    with tqdm(total=3, desc="instruction data", unit="step", disable=None) as bar:
        poems, n_files = load_poems(root)
        bar.update(1)
        pairs, dropped = generate_pairs(poems, cfg)
        bar.update(1)
        rng = random.Random(cfg.seed)
        rng.shuffle(pairs)
        val = [p for p in pairs if is_validation(p, cfg.val_fraction)]
        train = [p for p in pairs if not is_validation(p, cfg.val_fraction)]
        out.mkdir(parents=True, exist_ok=True)
        for split, rows in (("train", train), ("val", val)):
            _write_json(out / f"{split}.alpaca.json", [p.alpaca() for p in rows])
            _write_jsonl(out / f"{split}.chat.jsonl", [p.chat() for p in rows])
        stats = DataStats(
            files=n_files,
            poems=len(poems),
            pairs=len(pairs),
            train=len(train),
            val=len(val),
            duplicates_dropped=dropped,
            by_kind=dict(sorted(Counter(p.kind for p in pairs).items())),
            sui_pairs=sum(p.sui for p in pairs),
            sui_era_poets=len({p.author for p in poems if p.dynasty == SUI and p.author}),
        )
        (out / "stats.json").write_text(
            json.dumps({"config": asdict(cfg), "stats": asdict(stats)}, ensure_ascii=False, indent=2) + "\n",
            encoding="utf-8",
        )
        bar.update(1)
    return stats
