"""Training an interpolated modified Kneser-Ney n-gram model and writing it as ARPA.

Chen & Goodman (1998), as KenLM's ``lmplz`` estimates it (``lmplz`` itself does not install
from PyPI; ``pip install kenlm`` gives only the query side):

* counts: the highest order uses raw counts ``c``; a lower order uses continuation counts
  (how many distinct words precede the n-gram), except n-grams starting with ``<s>``,
  which nothing precedes and which keep their raw counts;
* discounts per order from the counts of counts ``t_k`` (n-grams with count k):
  ``Y = t1 / (t1 + 2 t2)``, ``D_k = k - (k + 1) Y t_{k+1} / t_k`` for k = 1, 2, 3+;
* ``p(w | h) = max(a(h w) - D(a(h w)), 0) / a(h) + gamma(h) p(w | h')`` with
  ``gamma(h) = (D_1 N_1(h) + D_2 N_2(h) + D_3 N_3+(h)) / a(h)``, ``N_k(h)`` the number of
  words seen after ``h`` with count k (3+: at least 3); unigrams interpolate with the uniform
  distribution over the vocabulary (``<unk>`` included, ``<s>`` not).

The ARPA file stores ``p(w | h)`` of every seen n-gram and ``gamma(h)`` as the backoff of
every context, so a reader's back-off gives exactly the interpolated probability.
"""

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from icefall_lite.lm.arpa import BOS, EOS, UNK
from icefall_lite.utils import atomic_open

__all__ = ["estimate_discounts", "train_kneser_ney", "write_arpa"]

Gram = Tuple[str, ...]


def estimate_discounts(counts: Iterable[int]) -> Tuple[float, float, float]:
    """(D1, D2, D3+) from one order's (adjusted) counts. When a count of counts is zero (tiny
    texts) they fall back to 0.5, 1.0, 1.5; each is kept in [0.01 k, k] (D_k <= 0 would leave
    no probability mass for unseen words after some contexts)."""
    t = Counter(int(c) for c in counts if c <= 4)
    t1, t2, t3, t4 = (t.get(k, 0) for k in (1, 2, 3, 4))
    if min(t1, t2, t3, t4) == 0:
        return 0.5, 1.0, 1.5
    y = t1 / (t1 + 2 * t2)
    d = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
    return tuple(min(max(dk, 0.01 * (k + 1)), float(k + 1)) for k, dk in enumerate(d))


def _discount(a: int, d: Tuple[float, float, float]) -> float:
    return d[min(a, 3) - 1]


def train_kneser_ney(
    sentences: Iterable[Sequence[str]],
    order: int,
    vocabulary: Optional[Iterable[str]] = None,
    discounts: Optional[Dict[int, Tuple[float, float, float]]] = None,
) -> Dict[int, Dict[Gram, Tuple[float, Optional[float]]]]:
    """Estimate the model.

    Args:
      sentences: word sequences (``<s>`` / ``</s>`` are added).
      order: highest n (>= 1).
      vocabulary: words to give a unigram even if the text never has them (e.g. every token of
        a BPE model, so a search never meets an unknown token).
      discounts: order -> (D1, D2, D3+) to use instead of estimating them (tests).
    Returns:
      n -> {n-gram: (log10 p, log10 backoff or None)}, the ARPA entries.
    """
    if order < 1:
        raise ValueError(f"--order must be >= 1, got {order}")
    raw: Dict[int, Counter] = {n: Counter() for n in range(1, order + 1)}
    num_sentences = 0
    for words in sentences:
        tokens = [BOS] + list(words) + [EOS]
        num_sentences += 1
        for i in range(1, len(tokens)):  # every position a word is predicted at
            for n in range(1, order + 1):
                if i - n + 1 < 0:
                    break
                raw[n][tuple(tokens[i - n + 1 : i + 1])] += 1
    if num_sentences == 0:
        raise ValueError("no training sentences")

    # Adjusted counts: continuation counts below the top order (except <s>-initial n-grams).
    adjusted: Dict[int, Counter] = {order: raw[order]}
    for n in range(order - 1, 0, -1):
        continuation = Counter(g[1:] for g in raw[n + 1])
        # Every n-gram not starting with <s> has a word before it, so its count is >= 1.
        adjusted[n] = Counter(
            {g: (c if g[0] == BOS else continuation[g]) for g, c in raw[n].items()}
        )

    vocab = {w for (w,) in raw[1]} | set(vocabulary or ()) | {UNK, EOS}
    vocab.discard(BOS)
    d_of = {
        n: (discounts or {}).get(n) or estimate_discounts(adjusted[n].values()) for n in adjusted
    }

    # Per context: total adjusted count and N1, N2, N3+ of the words after it.
    stats: Dict[int, Dict[Gram, List[int]]] = {}
    for n in range(1, order + 1):
        by_context: Dict[Gram, List[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for g, a in adjusted[n].items():
            entry = by_context[g[:-1]]
            entry[0] += a
            entry[min(a, 3)] += 1
        stats[n] = by_context

    def gamma(n: int, context: Gram) -> float:
        total, n1, n2, n3 = stats[n][context]
        d1, d2, d3 = d_of[n]
        return (d1 * n1 + d2 * n2 + d3 * n3) / total

    probs: Dict[int, Dict[Gram, float]] = {}
    uniform = 1.0 / len(vocab)
    unigram_total = stats[1][()][0]
    probs[1] = {}
    g0 = gamma(1, ())
    for w in vocab:
        a = adjusted[1].get((w,), 0)
        seen = max(a - _discount(a, d_of[1]), 0.0) / unigram_total if a > 0 else 0.0
        probs[1][(w,)] = seen + g0 * uniform
    for n in range(2, order + 1):
        probs[n] = {}
        for g, a in adjusted[n].items():
            context = g[:-1]
            lower = probs[n - 1][g[1:]]
            seen = max(a - _discount(a, d_of[n]), 0.0) / stats[n][context][0]
            probs[n][g] = seen + gamma(n, context) * lower

    entries: Dict[int, Dict[Gram, Tuple[float, Optional[float]]]] = {}
    for n in range(1, order + 1):
        entries[n] = {}
        for g, p in probs[n].items():
            backoff = None
            if n < order and g in stats[n + 1]:
                backoff = math.log10(gamma(n + 1, g))
            entries[n][g] = (math.log10(p), backoff)
    # <s> is a context, never predicted: ARPA's -99.
    bos_backoff = math.log10(gamma(2, (BOS,))) if order > 1 and (BOS,) in stats[2] else None
    entries[1][(BOS,)] = (-99.0, bos_backoff)
    return entries


def write_arpa(
    entries: Dict[int, Dict[Gram, Tuple[float, Optional[float]]]], path: Union[str, Path]
) -> Path:
    """Write the entries of :func:`train_kneser_ney` as an ARPA file (atomically: a temporary
    file renamed into place, so an interrupted run leaves no half model)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w") as f:
        f.write("\n\\data\\\n")
        for n in sorted(entries):
            f.write(f"ngram {n}={len(entries[n])}\n")
        for n in sorted(entries):
            f.write(f"\n\\{n}-grams:\n")
            for g in sorted(entries[n]):
                logp, backoff = entries[n][g]
                line = f"{logp:.6f}\t{' '.join(g)}"
                if backoff is not None:
                    line += f"\t{backoff:.6f}"
                f.write(line + "\n")
        f.write("\n\\end\\\n")
    return path
