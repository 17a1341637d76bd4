"""What :meth:`icefall_lite.ASRModel.transcribe` returns with ``return_hypotheses=True``: the text,
the BPE pieces with their start times, the words with start and end times, and the score.

(Not to be confused with :class:`icefall_lite.search.hypothesis.Hypothesis`, a search's partial
hypothesis in encoder frames; this one is the finished result in seconds.)
"""

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from icefall_lite.search.hypothesis import DecodingResult

__all__ = ["Hypothesis", "Word", "make_hypothesis", "words_from_pieces"]

# SentencePiece's word-start marker.
WORD_START = "▁"


@dataclass
class Word:
    """A word and its times in seconds from the start of the audio.

    ``start`` is when its first piece was emitted, ``end`` when its last piece was emitted plus
    one encoder frame: the searches say on which frame a token was emitted, not how long it
    lasts, so ``end`` is an estimate.
    """

    word: str
    start: float
    end: float


@dataclass
class Hypothesis:
    """The result for one input.

    Attributes:
      text: the transcript (pieces joined, ``▁`` as word boundary).
      tokens: the BPE pieces (``tokens.txt`` symbols).
      token_ids: their ids.
      timestamps: start time of each token in seconds (its encoder frame times the encoder's
        frame shift), non-decreasing.
      words: :class:`Word` per word (a piece starting with ``▁`` starts a word).
      score: the search's log-score of the hypothesis (for long audio decoded in chunks, the
        sum over the chunks).
    """

    text: str
    tokens: List[str] = field(default_factory=list)
    token_ids: List[int] = field(default_factory=list)
    timestamps: List[float] = field(default_factory=list)
    words: List[Word] = field(default_factory=list)
    score: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        """Plain types, for JSON."""
        return asdict(self)


def words_from_pieces(
    pieces: Sequence[str], starts: Sequence[float], frame_shift: float
) -> List[Word]:
    """Group BPE pieces into words.

    Args:
      pieces: symbols such as ``["▁HE", "LLO", "▁WORLD"]``.
      starts: start time (seconds) of each piece.
      frame_shift: seconds per encoder frame (the end of a word's last piece).
    Returns:
      the words (``[HELLO 0.0-0.12, WORLD ...]``); a leading piece without ``▁`` starts a word.
    """
    words: List[Word] = []
    for piece, start in zip(pieces, starts):
        text = piece.replace(WORD_START, "")
        if piece.startswith(WORD_START) or not words:
            if not text and piece == WORD_START:
                # a bare "▁" piece: the next piece starts the word
                words.append(Word("", start, start + frame_shift))
                continue
            words.append(Word(text, start, start + frame_shift))
        else:
            words[-1].word += text
            words[-1].end = start + frame_shift
    return [w for w in words if w.word]


def make_hypothesis(
    result: DecodingResult,
    symbols: Sequence[str],
    frame_shift: float,
    offset: float = 0.0,
    duration: Optional[float] = None,
) -> Hypothesis:
    """A search result (tokens, encoder-frame timestamps) as a :class:`Hypothesis`.

    Args:
      symbols: ``tokens.txt`` symbols by id.
      frame_shift: seconds per encoder frame.
      offset: seconds added to every time (where the decoded audio starts).
      duration: the audio's length: later times are clipped to it (a causal model emits its
        last tokens in the silence padded after the input, up to its look-ahead later).
    """
    pieces = [symbols[i] if 0 <= i < len(symbols) else "<unk>" for i in result.tokens]
    starts = [offset + t * frame_shift for t in result.timestamps]
    if duration is not None:
        starts = [min(t, max(0.0, offset + duration - frame_shift)) for t in starts]
    text = "".join(pieces).replace(WORD_START, " ").strip()
    return Hypothesis(
        text=" ".join(text.split()),
        tokens=pieces,
        token_ids=list(result.tokens),
        timestamps=[round(t, 3) for t in starts],
        words=[
            Word(w.word, round(w.start, 3), round(w.end, 3))
            for w in words_from_pieces(pieces, starts, frame_shift)
        ],
        score=float(result.score),
    )
