"""Generate the benchmark prompt file: Sui-dynasty questions built from the vendored corpus (data/knowledge).

Questions come from titles and first lines of Sui poems (隋 and 隋末唐初) and from the chapter topics of the 隋书
(帝纪 / 志 / 列传), with a fixed seed, so the file is reproducible: ``suiqa bench prompts``.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

PROMPTS_FILE = Path(__file__).with_name("data") / "sui_questions.txt"

POEM_TEMPLATES = (
    "请赏析{author}的《{title}》，并说明它反映了隋代怎样的社会风貌。",
    "“{line}”出自哪首诗？作者是谁？请解释这句诗的意思。",
    "《{title}》的作者{author}是什么人？他在隋朝有怎样的经历？",
    "请把{author}《{title}》的首句“{line}”翻译成现代汉语，并分析其修辞手法。",
)
BIOGRAPHY_TEMPLATES = (
    "根据《隋书》，{topic}是怎样的人物？请简述其生平事迹。",
    "《隋书·列传》中记载的{topic}在隋朝建立或灭亡的过程中起了什么作用？",
)
TREATISE_TEMPLATES = (
    "《隋书·{topic}志》记载了哪些主要内容？它对了解隋代制度有什么价值？",
    "隋代的{topic}制度有什么特点？与南北朝相比有哪些变化？",
)
GROUP_TEMPLATES = (
    "《隋书》的{topic}传记载了哪些人物和事迹？",
    "《隋书·{topic}传》反映了隋朝怎样的社会或对外关系？",
)
GROUP_TOPICS = {"后妃", "诚节", "孝义", "循吏", "酷吏", "儒林", "文学", "隐逸", "艺术", "外戚", "列女", "东夷",
                "南蛮", "西域", "北狄", "文四子", "炀三子"}
ANNALS_TEMPLATES = (
    "《隋书·{topic}纪》记载了哪些重大事件？请按时间顺序概述。",
)
_TOPIC_NOISE = re.compile(r"[○（）()]|[一二三四五六七八九十]+$|[上中下]$")


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _first_line(content: str) -> str:
    return re.split(r"[。！？；]", content, maxsplit=1)[0].strip()


def _clean_topic(first_line: str) -> str:
    topic = first_line.split()[0] if first_line.split() else first_line
    topic = _TOPIC_NOISE.sub("", _TOPIC_NOISE.sub("", topic))
    return topic[:12]


def poem_questions(knowledge: Path) -> list[str]:
    out = []
    for name in ("隋.jsonl", "隋末唐初.jsonl"):
        for poem in _read_jsonl(knowledge / "sui_poems" / name):
            author, title = poem.get("author") or "无名氏", poem.get("title") or ""
            line = _first_line(poem.get("content") or "")
            if not title or not line or "?" in line + title or author == "无名氏":
                continue
            out += [t.format(author=author, title=title, line=line) for t in POEM_TEMPLATES]
    return out


def book_of_sui_questions(knowledge: Path) -> list[str]:
    out = []
    for juan in _read_jsonl(knowledge / "book_of_sui" / "suishu_classical.jsonl"):
        topic = _clean_topic(juan.get("first_line") or "")
        if not topic or len(topic) > 10:
            continue  # a few 列传 start with a preface sentence instead of a name
        section = juan.get("section")
        if section == "列传" and topic in GROUP_TOPICS:
            section = "类传"
        templates = {"列传": BIOGRAPHY_TEMPLATES, "类传": GROUP_TEMPLATES, "志": TREATISE_TEMPLATES,
                     "帝纪": ANNALS_TEMPLATES}.get(section, ())
        out += [t.format(topic=topic) for t in templates]
    return out


def build_questions(data_dir: Path, count: int = 600, seed: int = 0) -> list[str]:
    """``count`` distinct questions, about 3/4 from poems and 1/4 from the 隋书, in a seeded random order."""
    knowledge = data_dir / "knowledge"
    if not (knowledge / "sui_poems").is_dir():
        raise FileNotFoundError(f"no Sui corpus under {knowledge} (expected sui_poems/ and book_of_sui/)")
    rng = random.Random(seed)
    poems = sorted(set(poem_questions(knowledge)))
    history = sorted(set(book_of_sui_questions(knowledge)))
    rng.shuffle(poems)
    n_history = min(len(history), count // 4)
    chosen = rng.sample(history, n_history) + poems[: count - n_history]
    rng.shuffle(chosen)
    return chosen


def write_prompts(data_dir: Path, path: Path = PROMPTS_FILE, count: int = 600, seed: int = 0) -> Path:
    questions = build_questions(data_dir, count, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# {len(questions)} Sui-dynasty questions from data/knowledge (suiqa bench prompts, seed {seed})\n"
    path.write_text(header + "\n".join(questions) + "\n", encoding="utf-8")
    return path
