"""Decoding output files in icefall's formats: ``recogs-*`` transcripts, ``errs-*`` error
statistics (word alignments by kaldialign) and ``wer-summary-*`` tables.

Every writer that takes a file name writes atomically (temporary file, then rename).
"""

import contextlib
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import IO, Dict, Iterator, List, Sequence, Tuple, Union

import kaldialign

from icefall_lite.utils import Pathlike, atomic_open

__all__ = ["store_transcripts", "word_error_rate", "write_error_stats", "write_wer_summary"]

# Marks the missing side of an insertion or deletion in an alignment.
EPS = "*"

Words = Union[str, Sequence[str]]


def word_error_rate(pairs: Sequence[Tuple[Sequence[str], Sequence[str]]]) -> float:
    """WER in percent of ``(ref_words, hyp_words)`` pairs: edit distance over reference words.

    An empty list, or references with no words at all, is an error (a score of nothing is no
    score).
    """
    num_ref = sum(len(ref) for ref, _ in pairs)
    if num_ref == 0:
        raise ValueError("word_error_rate: the references contain no words")
    errors = sum(kaldialign.edit_distance(list(ref), list(hyp))["total"] for ref, hyp in pairs)
    return 100.0 * errors / num_ref


@contextlib.contextmanager
def _open_for_writing(target: Union[Pathlike, IO[str]]) -> Iterator[IO[str]]:
    """Yield ``target`` itself if it is an open text stream, else write the path atomically."""
    if hasattr(target, "write"):
        yield target
    else:
        with atomic_open(target, "w") as f:
            yield f


def store_transcripts(filename: Pathlike, texts: Sequence[Tuple[str, Words, Words]]) -> None:
    """Write reference and hypothesis of each utterance, sorted by cut id.

    Args:
      filename: output path (``recogs-<test-set>-<settings>.txt``), written atomically.
      texts: ``(cut_id, ref, hyp)`` triples; ``ref``/``hyp`` are word lists or strings.

    Each utterance gives two lines: ``<cut_id>:\\tref=<ref>`` and ``<cut_id>:\\thyp=<hyp>``.
    """
    with atomic_open(filename, "w") as f:
        for cut_id, ref, hyp in sorted(texts, key=lambda triple: triple[0]):
            print(f"{cut_id}:\tref={ref}", file=f)
            print(f"{cut_id}:\thyp={hyp}", file=f)


def _merge_error_runs(alignment: List[Tuple[str, str]]) -> List[str]:
    """Render one utterance's alignment, a run of adjacent errors becoming one
    ``(ref words->hyp words)`` item (``*`` for an empty side); correct words are printed bare."""
    items: List[str] = []
    run_ref: List[str] = []
    run_hyp: List[str] = []

    def flush() -> None:
        if run_ref or run_hyp:
            items.append(f"({' '.join(run_ref) or EPS}->{' '.join(run_hyp) or EPS})")
            run_ref.clear()
            run_hyp.clear()

    for ref_word, hyp_word in alignment:
        if ref_word == hyp_word:
            flush()
            items.append(ref_word)
        else:
            if ref_word != EPS:
                run_ref.append(ref_word)
            if hyp_word != EPS:
                run_hyp.append(hyp_word)
    flush()
    return items


@dataclass
class _ErrorCounts:
    """What the alignments of a test set add up to (``per_word``: word -> [correct,
    substituted as ref, substituted as hyp, inserted, deleted])."""

    substitutions: Counter = field(default_factory=Counter)
    deletions: Counter = field(default_factory=Counter)
    insertions: Counter = field(default_factory=Counter)
    per_word: Dict[str, List[int]] = field(default_factory=lambda: defaultdict(lambda: [0] * 5))
    num_correct: int = 0
    num_ref_words: int = 0
    alignments: List[Tuple[str, list]] = field(default_factory=list)

    @property
    def counts(self) -> Tuple[int, int, int]:
        """(insertions, deletions, substitutions)."""
        return (
            sum(self.insertions.values()),
            sum(self.deletions.values()),
            sum(self.substitutions.values()),
        )

    def add(self, cut_id: str, ref: Sequence[str], hyp: Sequence[str]) -> None:
        alignment = kaldialign.align(list(ref), list(hyp), EPS)
        self.alignments.append((cut_id, alignment))
        self.num_ref_words += len(ref)
        for ref_word, hyp_word in alignment:
            if ref_word == EPS:
                self.insertions[hyp_word] += 1
                self.per_word[hyp_word][3] += 1
            elif hyp_word == EPS:
                self.deletions[ref_word] += 1
                self.per_word[ref_word][4] += 1
            elif ref_word != hyp_word:
                self.substitutions[(ref_word, hyp_word)] += 1
                self.per_word[ref_word][1] += 1
                self.per_word[hyp_word][2] += 1
            else:
                self.per_word[ref_word][0] += 1
                self.num_correct += 1


def write_error_stats(
    f: Union[Pathlike, IO[str]],
    test_set_name: str,
    results: Sequence[Tuple[str, Sequence[str], Sequence[str]]],
    enable_log: bool = True,
    compute_CER: bool = False,
) -> float:
    """Align each hypothesis with its reference and write icefall's ``errs-*`` report.

    Args:
      f: an open text stream, or a path (then written atomically).
      test_set_name: used in the log line.
      results: ``(cut_id, ref_words, hyp_words)`` triples, words as lists of str.
      enable_log: log the ``%WER`` line.
      compute_CER: score characters instead of words (spaces dropped), e.g. for Chinese.

    Returns:
      The error rate in percent: 100 * (ins + del + sub) / number of reference words
      (not rounded; the file shows two decimals). ``inf`` if there are errors but no
      reference words, 0 if both are empty.

    The file has a summary (``%WER``, counts) and then the sections ``PER-UTT DETAILS``,
    ``SUBSTITUTIONS``, ``DELETIONS``, ``INSERTIONS`` and ``PER-WORD STATS``.
    """
    if compute_CER:
        results = [(cut_id, list("".join(ref)), list("".join(hyp))) for cut_id, ref, hyp in results]
    errors = _ErrorCounts()
    for cut_id, ref, hyp in results:
        errors.add(cut_id, ref, hyp)
    num_ins, num_del, num_sub = errors.counts
    num_errors = num_sub + num_del + num_ins
    if errors.num_ref_words > 0:
        error_rate = 100.0 * num_errors / errors.num_ref_words
    else:
        error_rate = float("inf") if num_errors else 0.0

    unit = "CER" if compute_CER else "WER"
    if enable_log:
        logging.info(
            f"[{test_set_name}] %{unit} {error_rate:.2f}% [{num_errors} / "
            f"{errors.num_ref_words}, {num_ins} ins, {num_del} del, {num_sub} sub ]"
        )
    with _open_for_writing(f) as out:
        print(f"%{unit} = {error_rate:.2f}", file=out)
        _write_error_sections(out, errors)
    return error_rate


def _most_frequent_first(counter: Counter) -> List[tuple]:
    # Ties in reverse lexical order, as icefall sorts (count, key).
    return sorted(counter.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)


def _write_error_sections(out: IO[str], errors: _ErrorCounts) -> None:
    """Everything of the ``errs-*`` report after its ``%WER`` line."""
    num_ins, num_del, num_sub = errors.counts
    print(
        f"Errors: {num_ins} insertions, {num_del} deletions, {num_sub} substitutions, "
        f"over {errors.num_ref_words} reference words ({errors.num_correct} correct)",
        file=out,
    )
    print(
        "Search below for sections starting with PER-UTT DETAILS:, SUBSTITUTIONS:, "
        "DELETIONS:, INSERTIONS:, PER-WORD STATS:",
        file=out,
    )
    print("", file=out)

    print("PER-UTT DETAILS: corr or (ref->hyp)  ", file=out)
    for cut_id, alignment in errors.alignments:
        print(f"{cut_id}:\t" + " ".join(_merge_error_runs(alignment)), file=out)
    print("", file=out)

    print("SUBSTITUTIONS: count ref -> hyp", file=out)
    for (ref_word, hyp_word), count in _most_frequent_first(errors.substitutions):
        print(f"{count}   {ref_word} -> {hyp_word}", file=out)
    print("", file=out)

    print("DELETIONS: count ref", file=out)
    for word, count in _most_frequent_first(errors.deletions):
        print(f"{count}   {word}", file=out)
    print("", file=out)

    print("INSERTIONS: count hyp", file=out)
    for word, count in _most_frequent_first(errors.insertions):
        print(f"{count}   {word}", file=out)
    print("", file=out)

    print("PER-WORD STATS: word  corr tot_errs count_in_ref count_in_hyp", file=out)
    rows = []
    for word, (corr, ref_sub, hyp_sub, ins, dels) in errors.per_word.items():
        rows.append((ref_sub + hyp_sub + ins + dels, word, corr, ref_sub + dels, hyp_sub + ins))
    for num_errors, word, corr, only_ref, only_hyp in sorted(rows, reverse=True):
        print(f"{word}   {corr} {num_errors} {corr + only_ref} {corr + only_hyp}", file=out)


def write_wer_summary(filename: Pathlike, test_set_wers: Dict[str, float]) -> None:
    """Write ``wer-summary-*.txt``: a ``settings\\tWER`` header, then one
    ``<settings>\\t<WER>`` line per decoding setting, lowest WER first. Atomic."""
    with atomic_open(filename, "w") as f:
        print("settings\tWER", file=f)
        for settings, wer in sorted(test_set_wers.items(), key=lambda kv: kv[1]):
            print(f"{settings}\t{wer:.2f}", file=f)
