"""The request's ``stop`` strings and ``max_tokens`` applied to the answer the client receives (not to the
Thought/Action protocol), while the agent model streams it.

The answer is cut before the first stop string, and at ``max_tokens`` of the agent model's tokens, which sets
``truncated`` (OpenAI's finish_reason ``length``). Tokens are counted per streamed chunk: each
:class:`~react_tier.llm.TextDelta` carries the completion tokens up to its end (exact with vLLM's continuous usage
stats, else one per chunk), :class:`StreamedTurn` keeps those marks, and the cap cuts at the last whole chunk
within it, so an answer is never longer than the cap in the tier's own tokens (a chunk's characters cannot be
split by token without a tokenizer call per chunk). A tail that may be the start of a stop string is held back
until more text or the end shows it is not. The loop closes the upstream stream as soon as the answer is cut
(``ended``), so vLLM stops generating. tests/unit/react_tier/test_answer_shaper.py holds it as a unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from react_tier.llm import Finish, LLMDelta
from react_tier.react_format import answer_start
from react_tier.request import GenerationOptions
from react_tier.results import AnswerDelta, Emit
from react_tier.seams import Tokenizer


@dataclass
class StreamedTurn:
    """One agent turn as it streamed: its text, where each chunk's tokens end, and how the tier finished."""

    text: str = ""
    marks: list[tuple[int, int]] = field(default_factory=list)
    """(length of ``text`` after a streamed chunk, completion tokens so far): where each token ends in the text."""
    completion_tokens: int = 0
    finish_reason: str | None = None

    def add(self, delta: LLMDelta) -> None:
        if isinstance(delta, Finish):
            self.finish_reason, self.completion_tokens = delta.reason, delta.usage.completion_tokens
        else:
            self.text += delta.text
            self.marks.append((len(self.text), delta.tokens))

    def tokens_from(self, start: int, end: int | None = None) -> int:
        """Tokens of the chunks carrying ``text[start:end]`` (a chunk straddling ``start`` counts: never less)."""
        end = len(self.text) if end is None else end
        before = max((tok for pos, tok in self.marks if pos <= start), default=0)
        upto = next((tok for pos, tok in self.marks if pos >= end), self.marks[-1][1] if self.marks else 0)
        return max(0, upto - before)

    def cut_at_tokens(self, start: int, cap: int) -> int:
        """The largest chunk boundary ``end`` with ``tokens_from(start, end) <= cap``."""
        before = max((tok for pos, tok in self.marks if pos <= start), default=0)
        end = start
        for pos, tok in self.marks:
            if pos > start:
                if tok - before > cap:
                    break
                end = pos
        return end


class AnswerShaper:
    """The request's ``stop`` strings and ``max_tokens`` applied to the answer while it streams.

    ``offer(answer_so_far, ...)`` emits the part of the answer that is now safe to show: text that cannot be the
    beginning of a stop string, within the token cap. ``ended`` once a stop string or the cap cut the answer.
    """

    def __init__(self, generation: GenerationOptions, emit: Emit) -> None:
        self.stops, self.cap, self.emit = generation.stop, generation.max_tokens, emit
        self.holdback = max((len(s) for s in self.stops), default=1) - 1
        self.shown, self.tokens, self.truncated, self.ended, self.stopped = "", 0, False, False, False
        self.capped = False  # the request's max_tokens cut the answer (truncated: any cap did, the tier's too)

    def cut_at_stop(self, text: str) -> str:
        cuts = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if cuts:
            self.ended = self.stopped = True
            return text[:min(cuts)]
        return text

    async def whole(self, text: str, tokenizer: Tokenizer) -> str:
        """``text`` as the whole answer (not streamed: the degraded and extractive answers): cut at the stop strings
        and the cap in ``tokenizer``'s tokens (the domain tier's)."""
        text = self.cut_at_stop(text)
        cut, self.tokens = await tokenizer.truncate_to_tokens(text, self.cap or 1 << 30)
        self.truncated = len(cut) < len(text)
        return cut

    async def append(self, text: str, tokenizer: Tokenizer) -> str:
        """``text`` added after the answer shown (the evidence note), within the stop strings and what is left of
        the cap (counted with ``tokenizer``); emitted, and returned."""
        note = self.cut_at_stop(text)
        room = (1 << 30) if self.cap is None else self.cap - self.tokens
        if room <= 0 or not note.strip():
            return ""
        cut, tokens = await tokenizer.truncate_to_tokens(note, room)
        self.tokens += tokens
        self.truncated = self.truncated or len(cut) < len(note)
        if cut:
            self.emit(AnswerDelta(text=cut))
        return cut

    def offer(self, answer: str, turn: StreamedTurn, *, final: bool) -> None:
        """``answer``: the answer text so far (``final``: all of it) of ``turn`` (as streamed so far)."""
        if self.ended:
            return
        visible = self.cut_at_stop(answer)
        if not self.ended and not final and self.holdback:  # the tail may be the start of a stop string
            visible = visible[:max(len(self.shown), len(visible) - self.holdback)]
        start = answer_start(turn.text, answer)
        if not visible:  # nothing shown (e.g. a stop string at the very start): no answer tokens
            tokens = 0
        else:
            tokens = turn.tokens_from(start, start + len(visible)) if turn.marks else \
                turn.completion_tokens
        if self.cap is not None and tokens > self.cap:
            visible = visible[:max(0, turn.cut_at_tokens(start, self.cap) - start)]
            tokens = turn.tokens_from(start, start + len(visible)) if visible else 0
            self.truncated = self.ended = self.capped = True
        elif final and not self.ended and turn.finish_reason == "length":
            self.truncated = True  # the tier's own per-call cap cut the answer: also OpenAI's "length"
        self.tokens = tokens
        if visible.startswith(self.shown) and len(visible) > len(self.shown):
            self.emit(AnswerDelta(text=visible[len(self.shown):]))
            self.shown = visible
        self.ended = self.ended or final
