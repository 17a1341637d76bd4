"""Shallow fusion of a language model into the beam searches.

A hypothesis's search score becomes ``log p_am + lm_scale * log p_lm + bonus * words``, added
token by token as the hypothesis grows, plus ``lm_scale * log p_lm(</s> | history)`` when the
best final hypothesis is chosen. The LM is anything with the small interface of
:class:`TokenLm` (``icefall_lite.lm.TokenNgramLm`` is the n-gram one); ``search/`` imports no
other package of the library, so it is duck-typed here.
"""

from typing import Any, Dict, Hashable, Protocol, Tuple

__all__ = ["LmFusion", "TokenLm"]


class TokenLm(Protocol):
    """A language model over the acoustic model's output tokens (ids, blank excluded)."""

    def initial_state(self) -> Hashable:
        """The state at the start of an utterance."""

    def score(self, state: Hashable, token: int) -> Tuple[float, Hashable]:
        """(natural-log p(token | state), the next state)."""

    def final(self, state: Hashable) -> float:
        """Natural-log p(end of sentence | state)."""

    def is_word_start(self, token: int) -> bool:
        """Whether ``token`` begins a word (SentencePiece's leading "▁")."""


class LmFusion:
    """An LM with its weights, as the searches apply it.

    Args:
      lm: the token-level LM.
      scale: ``--lm-scale``, the weight of its log-probabilities.
      word_insertion_bonus: ``--word-insertion-bonus``, added for every word begun (it offsets
        the LM's pull towards fewer, shorter words).
    """

    def __init__(self, lm: TokenLm, scale: float, word_insertion_bonus: float = 0.0) -> None:
        self.lm = lm
        self.scale = scale
        self.word_insertion_bonus = word_insertion_bonus
        # (state, token) -> (score, next state): the searches ask the same few questions on
        # every frame, and a hit here is one dict look-up.
        self._cache: Dict[Tuple[Hashable, int], Tuple[float, Any]] = {}

    def initial_state(self) -> Any:
        return self.lm.initial_state()

    def extend(self, state: Any, token: int) -> Tuple[float, Any]:
        """(the score ``token`` adds after ``state``, the next state)."""
        key = (state, token)
        hit = self._cache.get(key)
        if hit is None:
            logp, next_state = self.lm.score(state, token)
            bonus = self.word_insertion_bonus if self.lm.is_word_start(token) else 0.0
            hit = (self.scale * logp + bonus, next_state)
            self._cache[key] = hit
        return hit

    def final(self, state: Any) -> float:
        """The end-of-sentence score of a complete hypothesis."""
        return self.scale * self.lm.final(state)
