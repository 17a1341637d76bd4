"""The unlabeled audio: reading it (Lhotse cuts, NeMo JSON manifests, NeMo tarred shards) and
giving its cuts their pseudo-labels for training.

Only :func:`with_pseudo_labels` puts a pseudo-label on a cut, and only the training cut set is
built from it: validation and test sets are read from their own manifests and never pass
through here.
"""

import gzip
import json
import zlib
from pathlib import Path
from typing import Iterator, List, Optional, Union

from lhotse import CutSet, SupervisionSegment
from lhotse.cut import Cut
from lhotse.utils import fastcopy

from icefall_lite.errors import UsageError
from icefall_lite.ipl.cache import PseudoLabelCache

__all__ = ["cut_ids", "load_unlabeled_cuts", "with_pseudo_labels"]

PathLike = Union[str, Path]


def _first_line(path: Path) -> dict:
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    if isinstance(row, dict):
                        return row
                    if isinstance(row, list):  # a Myrtle JSON array
                        return {"audio_filepath": ""}
                    break
    except (OSError, EOFError, UnicodeDecodeError, ValueError, zlib.error) as error:
        raise UsageError(f"--ipl-unlabeled-cuts {path}: unreadable ({error})") from None
    raise UsageError(
        f"--ipl-unlabeled-cuts {path}: expected Lhotse cuts or a NeMo JSON manifest (JSON "
        "lines), found no JSON object on its first line"
    )


def load_unlabeled_cuts(path: PathLike, tarred_audio: Optional[str] = None) -> CutSet:
    """The unlabeled set as a lazy CutSet.

    Args:
      path: Lhotse cuts (``.jsonl[.gz]``) or a NeMo JSON manifest (entries need no ``text``);
        with ``tarred_audio``, the NeMo tarred manifest(s) (a brace pattern allowed).
      tarred_audio: the NeMo tar shards (``audio_{0..7}.tar``), or None.
    """
    if tarred_audio:
        from icefall_lite.data.nemo_tarred import nemo_tarred_cuts

        return nemo_tarred_cuts(str(path), tarred_audio, require_text=False)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--ipl-unlabeled-cuts {path} not found")
    if "audio_filepath" in _first_line(path):
        from icefall_lite.data.nemo import nemo_to_cuts

        return nemo_to_cuts(path, require_text=False)
    return CutSet.from_jsonl_lazy(path)


def cut_ids(cuts: CutSet) -> List[str]:
    """All cut ids of a (lazy) CutSet, in order (reads the whole manifest once)."""
    return [cut.id for cut in cuts]


class _HasLabel:
    """Picklable filter: the cut has a label in ``labels``."""

    def __init__(self, labels: dict) -> None:
        self.labels = labels

    def __call__(self, cut: Cut) -> bool:
        return cut.id in self.labels


class _AttachLabel:
    """Picklable map: the cut with one supervision spanning it, whose text is its label."""

    def __init__(self, labels: dict) -> None:
        self.labels = labels

    def __call__(self, cut: Cut) -> Cut:
        label = self.labels[cut.id]
        old = cut.supervisions[0] if cut.supervisions else None
        supervision = SupervisionSegment(
            id=cut.id,
            recording_id=cut.recording_id if cut.recording_id is not None else cut.id,
            start=0.0,
            duration=cut.duration,
            channel=old.channel if old is not None else 0,
            text=label,
            speaker=old.speaker if old is not None else None,
            language=old.language if old is not None else None,
            custom={"pseudo_label": True},
        )
        return fastcopy(cut, supervisions=[supervision])


def with_pseudo_labels(cuts: CutSet, cache: PseudoLabelCache) -> CutSet:
    """The cuts of ``cuts`` that have a label in ``cache``, each with one supervision carrying
    it (whatever text the cut had is replaced); lazy, in the order of ``cuts``."""
    labels = {cut_id: label.text for cut_id, label in cache.labels.items()}
    return cuts.filter(_HasLabel(labels)).map(_AttachLabel(labels))


def iterate_shard(cuts: CutSet, ids: List[str]) -> Iterator[Cut]:
    """The cuts of ``cuts`` whose ids are in ``ids`` (one rank's share), in manifest order."""
    wanted = set(ids)
    for cut in cuts:
        if cut.id in wanted:
            yield cut
