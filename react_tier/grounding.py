"""Answer-level grounding check: is each claim of a final answer backed by a passage it cites?

    report = check_grounding("隋文帝崩于大宝殿，时年六十四。[suishu:卷2:40]", {"suishu:卷2:40": passage_text})
    report.score        # 0.0-1.0: the share of claim sentences that are cited AND supported
    report.flagged      # the sentences that are not (reason "uncited", "unsupported" or "unknown-citation")

Pure and cheap (no model, no index): the answer is split into sentences (。！？；!?; and line breaks); a sentence
with fewer than ``min_claim_chars`` Chinese/Latin characters once its citations are removed (e.g. "是的。") is not
a claim. A claim's citations are the bracketed ids in it; a claim without its own brackets takes those of the
next cited sentence of the same paragraph ("A。B。[x]" cites x for A and B), else of the previous one. A claim
is *supported* when at least ``min_support`` of its character bigrams (function-word bigrams such as 的是 left
out) occur in the text of the passages it cites, after both sides are put in the knowledge base's search form
(simplified, variant characters folded). Character bigrams are what the knowledge base itself matches on; a
modern answer is compared with the whole passage, and the history passages carry their modern translation
(【译文】), so a faithful paraphrase still shares most bigrams: on the unit-test examples a faithful sentence
scores 0.62-1.0 and an invented one 0.0, hence the default threshold 0.5.

Citations to ids that are not in ``cited`` (the passages the agent actually observed) never count as support
and are listed in ``unknown_ids``. Which brackets are citations, and which ids they hold, is the one citation
pattern of react_tier/react_format.py (``[id]``, ``【id】``, ``［id］``, several ids in one bracket; an id is one
the agent observed or looks like ``scheme:rest``), the same the loop's citations list reads: other brackets are
text, e.g. the history passages' own 【译文】 mark, quoted in an answer, was read as the id "译文" and flagged the
sentence as citing an unknown passage (issue #25).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from react_tier.react_format import cited_ids, strip_citations
from react_tier.results import Grounding, SentenceCheck

SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|\n")
CONTENT = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaffA-Za-z0-9]")
# bigrams made only of these characters carry no claim (的是, 了一, 他的 ...): they are left out of the support
FUNCTION_CHARS = frozenset("的了是在和与及也就都而之其为于以所这那他她它们个一有着过吗呢吧啊呀被把将对从向")


def _normalise(text: str) -> str:
    try:
        from react_tier.knowledge.text import search_form
    except ImportError:  # OpenCC missing: compare the text as it is
        return text
    return search_form(text)


def _bigrams(text: str) -> set[str]:
    chars = "".join(CONTENT.findall(text))
    grams = {chars[i:i + 2] for i in range(len(chars) - 1)}
    return {g for g in grams if not (g[0] in FUNCTION_CHARS and g[1] in FUNCTION_CHARS)}


def _split(answer: str, known: Collection[str]) -> list[tuple[int, str]]:
    """(paragraph number, sentence) for every non-empty sentence; a citation that stands alone after the
    sentence end ("……。[x]") is glued back to the sentence before it."""
    out: list[tuple[int, str]] = []
    for number, paragraph in enumerate(answer.split("\n")):
        for piece in SENTENCE_END.split(paragraph):
            piece = piece.strip()
            if not piece:
                continue
            if out and out[-1][0] == number and not CONTENT.search(strip_citations(piece, known)):
                out[-1] = (number, out[-1][1] + piece)
            else:
                out.append((number, piece))
    return out


def check_sentences(answer: str, cited: dict[str, str], *, min_support: float = 0.5,
                    min_claim_chars: int = 4) -> list[SentenceCheck]:
    """Every claim sentence of ``answer`` with its citations, support and verdict, against ``cited`` (id ->
    passage text, the passages the agent observed). Pure function; see the module docstring for the rules."""
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a str, got {type(answer).__name__}")
    passage_grams = {pid: _bigrams(_normalise(text or "")) for pid, text in cited.items()}
    pieces = _split(answer, cited)
    own = [cited_ids(s, cited) for _, s in pieces]
    checks: list[SentenceCheck] = []
    for i, (paragraph, sentence) in enumerate(pieces):
        body = strip_citations(sentence, cited).strip()
        if len(CONTENT.findall(body)) < min_claim_chars:
            continue
        ids = own[i]
        if not ids:  # the next cited sentence of the paragraph, else the previous one
            later = (own[j] for j in range(i + 1, len(pieces)) if pieces[j][0] == paragraph and own[j])
            earlier = (own[j] for j in range(i - 1, -1, -1) if pieces[j][0] == paragraph and own[j])
            ids = next(later, None) or next(earlier, [])
        grams = _bigrams(_normalise(body))
        known = [pid for pid in ids if pid in passage_grams]
        found: set[str] = set().union(*(passage_grams[pid] for pid in known)) if known else set()
        support = len(grams & found) / len(grams) if grams else 1.0
        if not ids:
            reason = "uncited"
        elif not known:
            reason = "unknown-citation"
        elif support < min_support:
            reason = "unsupported"
        else:
            reason = None
        checks.append(SentenceCheck(text=body, citations=ids, support=round(support, 3), reason=reason))
    return checks


def check_grounding(answer: str, cited: dict[str, str], *, min_support: float = 0.5,
                    min_claim_chars: int = 4) -> Grounding:
    """The answer's grounding: the share of its claim sentences that are grounded, the ones that are not, and the
    cited ids that are not in ``cited`` (check_sentences has the rules)."""
    checks = check_sentences(answer, cited, min_support=min_support, min_claim_chars=min_claim_chars)
    grounded = sum(check.reason is None for check in checks)
    unknown = dict.fromkeys(pid for check in checks for pid in check.citations if pid not in cited)
    return Grounding(score=round(grounded / len(checks), 3) if checks else 1.0, claims=len(checks),
                     flagged=[check for check in checks if check.reason is not None], unknown_ids=list(unknown))
