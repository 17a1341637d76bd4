"""Removing cuts a training run cannot use, before the first batch, with a report in the log.

Reasons a cut is dropped (the keys of :attr:`FilterReport.counts`):
  - ``no_supervision`` / ``empty_text``: nothing to learn from.
  - ``missing_data``: the features (or, with no features, the audio) file does not exist.
  - ``unreadable``: the features/audio cannot be loaded (only with ``check_readable=True``).
  - ``too_short`` / ``too_long``: duration outside ``[min_duration, max_duration]`` seconds.
  - ``unencodable``: the BPE model maps part of the text to ``<unk>``.
  - ``too_few_frames``: after the encoder's subsampling there are fewer frames than tokens, which
    the pruned/"modified" transducer loss cannot align (it emits at most one token per frame).
"""

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from lhotse import CutSet
from lhotse.cut import Cut

__all__ = [
    "FilterReport",
    "check_cut_for_training",
    "filter_cuts_for_training",
    "conv2d_subsampled_frames",
]

# Frames per second of the 10 ms fbank frame shift every recipe here uses.
_FRAMES_PER_SECOND = 100


def conv2d_subsampled_frames(num_frames: int) -> int:
    """Encoder frames from fbank frames for ``Conv2dSubsampling``: ``((T - 7) // 2 + 1) // 2``."""
    return ((num_frames - 7) // 2 + 1) // 2


@dataclass
class FilterReport:
    """Counts of kept/dropped cuts per reason and up to ``max_examples`` cut ids per reason."""

    num_kept: int = 0
    counts: Counter = field(default_factory=Counter)
    examples: Dict[str, List[str]] = field(default_factory=dict)
    max_examples: int = 3

    @property
    def num_dropped(self) -> int:
        return sum(self.counts.values())

    def add(self, cut_id: str, reason: Optional[str], detail: str = "") -> None:
        if reason is None:
            self.num_kept += 1
            return
        self.counts[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < self.max_examples:
            examples.append(f"{cut_id} ({detail})" if detail else cut_id)

    def summary(self, name: str = "cuts") -> str:
        total = self.num_kept + self.num_dropped
        lines = [f"{name}: kept {self.num_kept} of {total}, dropped {self.num_dropped}"]
        for reason, count in self.counts.most_common():
            lines.append(f"  {reason}: {count}, e.g. {', '.join(self.examples[reason])}")
        return "\n".join(lines)


class _ExistenceCache:
    """``os.path.exists`` remembered per path: many cuts share one features archive."""

    def __init__(self) -> None:
        self._known: Dict[str, bool] = {}

    def __call__(self, path: str) -> bool:
        if path not in self._known:
            self._known[path] = os.path.exists(path)
        return self._known[path]


class _IdNotIn:
    """Picklable filter predicate (a lambda would stop DataLoader workers from forking)."""

    def __init__(self, ids: set) -> None:
        self.ids = ids

    def __call__(self, cut: Cut) -> bool:
        return cut.id not in self.ids


def _data_paths(cut: Cut) -> Optional[List[str]]:
    """The files holding the cut's data ([] for data in memory, e.g. read from Shar shards or
    NeMo tars); None when the cut has neither features nor a recording."""
    if cut.has_features:
        if cut.features.storage_type.startswith("memory"):
            return []
        return [cut.features.storage_path]
    if cut.has_recording:
        return [source.source for source in cut.recording.sources if source.type == "file"]
    return None


def check_cut_for_training(
    cut: Cut,
    sp=None,
    min_duration: float = 1.0,
    max_duration: float = 20.0,
    subsampling: Optional[Callable[[int], int]] = conv2d_subsampled_frames,
    check_readable: bool = False,
    exists: Callable[[str], bool] = os.path.exists,
) -> Tuple[Optional[str], str]:
    """Why ``cut`` cannot be trained on, or ``(None, "")`` when it can.

    Args:
      cut: a cut with one or more supervisions.
      sp: a SentencePiece processor; ``None`` skips the token checks.
      min_duration, max_duration: allowed cut duration in seconds.
      subsampling: maps fbank frames ``T`` to encoder frames ``T'``; ``None`` skips that check.
      check_readable: actually load the features/audio (slow; catches corrupt files).
      exists: the existence test for data files (a cache in :func:`filter_cuts_for_training`).
    Returns:
      ``(reason, detail)``; reason is one of the module docstring's keys.
    """
    if not cut.supervisions:
        return "no_supervision", ""
    text = " ".join((s.text or "").strip() for s in cut.supervisions).strip()
    if not text:
        return "empty_text", ""
    paths = _data_paths(cut)
    if paths is None:
        return "missing_data", "no features and no recording"
    for path in paths:
        if not exists(path):
            return "missing_data", path
    if cut.duration < min_duration:
        return "too_short", f"{cut.duration:.2f}s < {min_duration}s"
    if cut.duration > max_duration:
        return "too_long", f"{cut.duration:.2f}s > {max_duration}s"
    if sp is not None:
        token_ids = sp.encode(text, out_type=int)
        if sp.unk_id() in token_ids:
            return "unencodable", text[:40]
        if subsampling is not None:
            num_frames = cut.num_frames if cut.has_features else None
            if num_frames is None:
                num_frames = int(round(cut.duration * _FRAMES_PER_SECOND))
            encoder_frames = subsampling(num_frames)
            if encoder_frames < len(token_ids):
                return "too_few_frames", f"{encoder_frames} frames < {len(token_ids)} tokens"
    if check_readable:
        try:
            cut.load_features() if cut.has_features else cut.load_audio()
        except Exception as error:  # any decoder error means the same thing: unusable
            return "unreadable", f"{type(error).__name__}: {str(error)[:60]}"
    return None, ""


def filter_cuts_for_training(
    cuts: CutSet,
    sp=None,
    min_duration: float = 1.0,
    max_duration: float = 20.0,
    subsampling: Optional[Callable[[int], int]] = conv2d_subsampled_frames,
    check_readable: bool = False,
    name: str = "training cuts",
    return_report: bool = False,
):
    """Drop the cuts :func:`check_cut_for_training` rejects; log counts and named examples.

    One counting pass runs now (metadata only unless ``check_readable``), so the log shows the
    damage before training starts; the returned CutSet is the lazy filter over ``cuts`` (so a
    large manifest is not held in memory) and yields exactly the cuts counted as kept.

    Args:
      cuts: the CutSet to clean (lazy or eager).
      sp, min_duration, max_duration, subsampling, check_readable: see
        :func:`check_cut_for_training`.
      name: how the log names this set.
      return_report: also return the :class:`FilterReport`.
    Returns:
      the filtered CutSet, or ``(CutSet, FilterReport)`` with ``return_report``.
    """
    exists = _ExistenceCache()
    report = FilterReport()
    dropped_ids = set()
    for cut in cuts:
        reason, detail = check_cut_for_training(
            cut, sp, min_duration, max_duration, subsampling, check_readable, exists
        )
        report.add(cut.id, reason, detail)
        if reason is not None:
            dropped_ids.add(cut.id)
    log = logging.warning if report.num_dropped else logging.info
    log(report.summary(name))
    if report.num_kept == 0:
        raise ValueError(f"{name}: every cut was filtered out\n{report.summary(name)}")
    filtered = cuts.filter(_IdNotIn(dropped_ids))
    return (filtered, report) if return_report else filtered
