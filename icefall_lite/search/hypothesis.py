"""Search results and the hypothesis containers that beam searches share.

Every search in :mod:`icefall_lite.search` returns one :class:`DecodingResult` per utterance, in the
order of its input. ``timestamps[i]`` is the encoder frame (after subsampling) at which
``tokens[i]`` was emitted, so ``timestamps`` is non-decreasing and has the length of ``tokens``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple


@dataclass
class DecodingResult:
    """The best hypothesis of one utterance.

    Attributes:
      tokens: token ids without blanks and without the decoder's initial context.
      timestamps: encoder frame index (0-based, subsampled frames) of each token.
      score: log-probability (or log-score, for CTC and lattice searches) of the hypothesis.
    """

    tokens: List[int]
    timestamps: List[int]
    score: float


@dataclass
class Hypothesis:
    """A partial transducer hypothesis.

    Attributes:
      ys: the decoder history: ``context_size`` start symbols followed by the emitted tokens.
      log_prob: total log-probability (summed over the alignments merged into it).
      timestamps: encoder frame index of each emitted token (``len(ys) - context_size`` items).
      decoder_state: a recurrent decoder's state before the last token of ``ys`` (None: the
        initial state, or a stateless decoder); see
        :func:`~icefall_lite.search.transducer_common.decoder_step`.
      lm_state: the fused language model's state after ``ys`` (None without LM fusion; with
        it, ``log_prob`` includes the LM scores).
    """

    ys: List[int]
    log_prob: float
    timestamps: List[int] = field(default_factory=list)
    decoder_state: Any = None
    lm_state: Any = None

    @property
    def key(self) -> Tuple[int, ...]:
        """Hashable identity: two hypotheses with equal ``ys`` are the same token sequence."""
        return tuple(self.ys)


def _log_add(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    hi, lo = (a, b) if a >= b else (b, a)
    return hi + math.log1p(math.exp(lo - hi))


class HypothesisList:
    """Hypotheses keyed by token sequence; adding a sequence twice log-adds the probabilities.

    Merging keeps the timestamps of the more probable of the two alignments.
    """

    def __init__(self, hyps: Optional[Dict[Tuple[int, ...], Hypothesis]] = None) -> None:
        self._data: Dict[Tuple[int, ...], Hypothesis] = dict(hyps) if hyps else {}

    def add(self, hyp: Hypothesis) -> None:
        old = self._data.get(hyp.key)
        if old is None:
            self._data[hyp.key] = hyp
            return
        timestamps = hyp.timestamps if hyp.log_prob > old.log_prob else old.timestamps
        # Equal token sequences mean equal decoder states: keep the old one.
        self._data[hyp.key] = Hypothesis(
            ys=old.ys,
            log_prob=_log_add(old.log_prob, hyp.log_prob),
            timestamps=timestamps,
            decoder_state=old.decoder_state,
            lm_state=old.lm_state,  # a function of ys: the same for both
        )

    def remove(self, hyp: Hypothesis) -> None:
        del self._data[hyp.key]

    def get_most_probable(self, length_norm: bool = False) -> Hypothesis:
        """The hypothesis with the highest log-probability (divided by ``len(ys)`` if asked;
        icefall normalises by length when picking the final result of its beam searches)."""
        if not self._data:
            raise ValueError("get_most_probable() on an empty HypothesisList")
        if length_norm:
            return max(self._data.values(), key=lambda h: h.log_prob / len(h.ys))
        return max(self._data.values(), key=lambda h: h.log_prob)

    def filter(self, threshold: float) -> "HypothesisList":
        """A new list with the hypotheses whose log_prob is strictly above ``threshold``."""
        return HypothesisList({k: h for k, h in self._data.items() if h.log_prob > threshold})

    def topk(self, k: int) -> "HypothesisList":
        best = sorted(self._data.items(), key=lambda kv: kv[1].log_prob, reverse=True)[:k]
        return HypothesisList(dict(best))

    def __contains__(self, key: Tuple[int, ...]) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[Hypothesis]:
        return iter(self._data.values())

    def __len__(self) -> int:
        return len(self._data)

    def __str__(self) -> str:
        return ", ".join(f"{h.ys}: {h.log_prob:.3f}" for h in self)


def hypothesis_to_result(hyp: Hypothesis, context_size: int) -> DecodingResult:
    """Strip the decoder's start context from ``hyp.ys``."""
    return DecodingResult(
        tokens=list(hyp.ys[context_size:]),
        timestamps=list(hyp.timestamps),
        score=float(hyp.log_prob),
    )
