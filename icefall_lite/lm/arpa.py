"""Reading and scoring ARPA back-off n-gram models (the format KenLM, SRILM and our
:mod:`~icefall_lite.lm.kneser_ney` trainer write).

An ARPA file lists, per order, ``log10 p(w | h)  h w  [log10 backoff(h w)]``. The probability
of a word after a context with no entry for it backs off: ``p(w | h) = backoff(h) p(w | h')``,
``h'`` being ``h`` without its oldest word. Scores here are natural logs.

Everything is plain Python dicts over integer word ids; :meth:`NgramLm.score` keeps a
context as the shortest suffix that still changes a later probability (KenLM's state
minimisation), so hypotheses with the same useful history share one state.
"""

import gzip
import math
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from icefall_lite.errors import UsageError

__all__ = ["BOS", "EOS", "UNK", "ArpaError", "NgramLm", "read_arpa"]

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
LN10 = math.log(10.0)
# ARPA's "impossible" (<s> is never predicted); KenLM writes -99 / uses -100 for a missing <unk>.
UNK_LOG10_DEFAULT = -100.0

State = Tuple[int, ...]


class ArpaError(UsageError):
    """A missing, unreadable or malformed ARPA file (one line naming the file and line)."""


class NgramLm:
    """A back-off n-gram model.

    Attributes:
      order: the highest n.
      words: id -> word; ``ids`` word -> id.
      grams: n-gram (tuple of ids) -> (log10 prob, log10 backoff).
    """

    def __init__(
        self, order: int, words: List[str], grams: Dict[Tuple[int, ...], Tuple[float, float]]
    ) -> None:
        self.order = order
        self.words = words
        self.ids = {w: i for i, w in enumerate(words)}
        self.grams = grams
        self.bos = self.ids.get(BOS)
        self.unk = self.ids.get(UNK)
        unk_entry = grams.get((self.unk,)) if self.unk is not None else None
        self.unk_log10 = unk_entry[0] if unk_entry is not None else UNK_LOG10_DEFAULT
        # Contexts worth keeping in a state: those with a backoff (a longer n-gram starts
        # with them); a state is shortened to its longest suffix among these.
        self._contexts = {g for g, (_, bo) in grams.items() if bo != 0.0 and len(g) < order}
        self._cache: Dict[Tuple[State, int], Tuple[float, State]] = {}

    @property
    def vocabulary(self) -> List[str]:
        """The words the model predicts (``<s>`` excluded)."""
        return [w for w in self.words if w != BOS]

    def initial_state(self) -> State:
        """The context at a sentence start: ``<s>``."""
        return self._shrink((self.bos,)) if self.bos is not None else ()

    def _shrink(self, state: State) -> State:
        state = state[-(self.order - 1) :] if self.order > 1 else ()
        while state and state not in self._contexts:
            state = state[1:]
        return state

    def log10_prob(self, context: State, word: int) -> float:
        """log10 p(word | context), backing off as the ARPA format defines."""
        backoff = 0.0
        while True:
            entry = self.grams.get(context + (word,))
            if entry is not None:
                return backoff + entry[0]
            if not context:
                return backoff + self.unk_log10
            ctx_entry = self.grams.get(context)
            if ctx_entry is not None:
                backoff += ctx_entry[1]
            context = context[1:]

    def score(self, state: State, word: int) -> Tuple[float, State]:
        """(natural-log p(word | state), the state after it); cached."""
        key = (state, word)
        hit = self._cache.get(key)
        if hit is None:
            logp = self.log10_prob(state, word) * LN10
            hit = (logp, self._shrink(state + (word,)))
            self._cache[key] = hit
        return hit

    def word_id(self, word: str) -> int:
        """The id of ``word``, ``<unk>``'s (or -1) if the model does not know it."""
        return self.ids.get(word, self.unk if self.unk is not None else -1)

    def sentence_log10(self, words: Sequence[str], bos: bool = True, eos: bool = True) -> float:
        """log10 probability of a whole sentence (as KenLM's ``Model.score``)."""
        state = self.initial_state() if bos else ()
        total = 0.0
        for w in list(words) + ([EOS] if eos else []):
            logp, state = self.score(state, self.word_id(w))
            total += logp / LN10
        return total


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, "r", encoding="utf-8")


def read_arpa(path: Union[str, Path], what: str = "--lm") -> NgramLm:
    """Read an ARPA file (plain or ``.gz``).

    Args:
      path: the file.
      what: how the user named it (the flag), for messages.
    Raises:
      ArpaError with one line naming the file (and the line) when it is missing, unreadable or
      not ARPA (no ``\\data\\`` header, a count that disagrees with its section, a bad entry).
    """
    path = Path(path)
    if not path.is_file():
        raise ArpaError(f"{what} {path}: no such ARPA file (make it with prepare.sh's LM stage)")
    try:
        with _open_text(path) as f:
            return _parse(f, path, what)
    except (OSError, UnicodeDecodeError, EOFError) as error:
        raise ArpaError(f"{what} {path}: cannot read it as ARPA text: {error}") from None


def _parse(lines: Iterable[str], path: Path, what: str) -> NgramLm:
    def fail(lineno: int, message: str) -> ArpaError:
        return ArpaError(f"{what} {path}:{lineno}: not a valid ARPA file: {message}")

    expected: Dict[int, int] = {}
    seen: Dict[int, int] = {}
    words: List[str] = []
    ids: Dict[str, int] = {}
    grams: Dict[Tuple[int, ...], Tuple[float, float]] = {}
    section: Optional[int] = None  # 0: \data\, n: \n-grams:
    ended = False
    lineno = 0
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if ended:
            break
        if line == "\\data\\":
            section = 0
            continue
        if line == "\\end\\":
            ended = True
            continue
        if line.startswith("\\") and line.endswith("-grams:"):
            try:
                section = int(line[1 : -len("-grams:")])
            except ValueError:
                raise fail(lineno, f"bad section header {line!r}") from None
            if section not in expected:
                raise fail(lineno, f"section {line} not announced in \\data\\")
            seen[section] = 0
            continue
        if section is None:
            raise fail(lineno, "expected the \\data\\ header first")
        if section == 0:
            key, _, value = line.partition("=")
            parts = key.split()
            if len(parts) != 2 or parts[0] != "ngram" or not value.strip().isdigit():
                raise fail(lineno, f"expected 'ngram N=count' in \\data\\, got {line!r}")
            expected[int(parts[1])] = int(value)
            continue
        fields = line.split()
        n = section
        if len(fields) not in (n + 1, n + 2):
            raise fail(lineno, f"a {n}-gram entry needs log10 prob, {n} words [, backoff]")
        try:
            logprob = float(fields[0])
            backoff = float(fields[n + 1]) if len(fields) == n + 2 else 0.0
        except ValueError:
            raise fail(lineno, f"non-numeric probability or backoff in {line!r}") from None
        gram = []
        for w in fields[1 : n + 1]:
            if w not in ids:
                if n > 1:
                    raise fail(lineno, f"word {w!r} has no unigram entry")
                ids[w] = len(words)
                words.append(w)
            gram.append(ids[w])
        grams[tuple(gram)] = (logprob, backoff)
        seen[n] += 1
    if section is None:
        raise ArpaError(f"{what} {path}: not an ARPA file (no \\data\\ header)")
    if not ended:
        raise ArpaError(f"{what} {path}: not a valid ARPA file: no \\end\\ (truncated?)")
    for n, count in expected.items():
        if seen.get(n, 0) != count:
            raise ArpaError(
                f"{what} {path}: not a valid ARPA file: \\data\\ announces {count} {n}-grams, "
                f"the file has {seen.get(n, 0)}"
            )
    if not expected or 1 not in expected:
        raise ArpaError(f"{what} {path}: not a valid ARPA file: no 1-grams")
    return NgramLm(max(expected), words, grams)
