"""The n-gram LM as the searches use it: over the acoustic model's BPE tokens.

The LM is token-level: its "words" are the SentencePiece pieces of the model's vocabulary
(``▁THE``, ``RE``, ...), trained on the BPE-encoded training transcripts. Why tokens and not
words: a beam search over BPE tokens can then score every extension the moment it is made
(a word-level LM could only score a word once the next word starts, so with a beam of 4 a
hypothesis would often be pruned before its LM score arrives), the LM's vocabulary is exactly
the model's (no out-of-vocabulary words, and a mismatch is detected exactly), and one model
serves CTC and transducer searches alike. A higher order (5 by default) makes up for tokens
being shorter than words. ``--word-insertion-bonus`` still counts words: tokens starting
with ``▁``.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Sequence, Tuple, Union

from icefall_lite.errors import UsageError
from icefall_lite.lm.arpa import BOS, EOS, NgramLm, State, read_arpa

if TYPE_CHECKING:  # search/ imports torch; the LM tools do not need it
    from icefall_lite.search.lm_fusion import LmFusion

__all__ = ["LmVocabularyError", "TokenNgramLm", "load_token_lm", "load_token_lm_fusion"]

WORD_START = "\u2581"  # SentencePiece's word-boundary mark
# Pieces of the BPE model that are not text (never LM words).
SPECIAL_PIECES = ("<blk>", "<sos/eos>", "<unk>", BOS, EOS)


class LmVocabularyError(UsageError):
    """The LM's words are not the model's tokens."""


class TokenNgramLm:
    """An :class:`NgramLm` over token pieces, addressed by the model's token ids.

    Args:
      lm: the n-gram model.
      pieces: id -> piece of the acoustic model's tokens (``tokens.txt`` / the BPE model).
      source: how the LM was named (flag and file), for messages.
    Raises:
      LmVocabularyError (one line) when an LM word is not one of the pieces (an LM of words,
      or of another BPE model).
    """

    def __init__(self, lm: NgramLm, pieces: Sequence[str], source: str = "--lm") -> None:
        known = set(pieces)
        foreign = [w for w in lm.vocabulary if w not in known and w not in SPECIAL_PIECES]
        if foreign:
            raise LmVocabularyError(
                f"{source}: its vocabulary does not match the model's tokens: {len(foreign)} of "
                f"{len(lm.vocabulary)} LM words are not BPE pieces (e.g. {foreign[0]!r}); build "
                f"it from text encoded with the same --bpe-model (prepare.sh's LM stage)"
            )
        self.lm = lm
        self.order = lm.order
        self._ids = [lm.word_id(p) for p in pieces]
        self._word_start = [p.startswith(WORD_START) for p in pieces]
        self._eos = lm.ids[EOS] if EOS in lm.ids else lm.word_id(EOS)

    def initial_state(self) -> State:
        return self.lm.initial_state()

    def score(self, state: State, token: int) -> Tuple[float, State]:
        """(natural-log p(token | state), next state)."""
        return self.lm.score(state, self._ids[token])

    def final(self, state: State) -> float:
        return self.lm.score(state, self._eos)[0]

    def is_word_start(self, token: int) -> bool:
        return self._word_start[token]


def load_token_lm(
    path: Union[str, Path], pieces: Sequence[str], what: str = "--lm"
) -> TokenNgramLm:
    """Read the ARPA file ``path`` and check it against the model's token pieces (one-line
    errors: missing, malformed, vocabulary mismatch)."""
    lm = read_arpa(path, what)
    return TokenNgramLm(lm, pieces, source=f"{what} {path}")


def load_token_lm_fusion(
    path: Union[str, Path],
    pieces: Sequence[str],
    scale: float,
    word_insertion_bonus: float = 0.0,
    what: str = "--lm-path",
) -> "LmFusion":
    """The token LM of the ARPA file ``path`` (checked against ``pieces`` as
    :func:`load_token_lm` does) with its fusion weights, as the searches take it: what
    decode.py, pretrained.py and ``ASRModel.transcribe(lm_path=...)`` all fuse.

    Args:
      pieces: id -> piece of the acoustic model's tokens.
      scale: weight of the LM's log-probabilities (``--lm-scale``).
      word_insertion_bonus: added for every word begun (``--word-insertion-bonus``).
      what: how the caller names the file, for messages (``--lm-path``, ``lm_path``).
    """
    from icefall_lite.search.lm_fusion import LmFusion

    return LmFusion(load_token_lm(path, pieces, what), scale, word_insertion_bonus)
