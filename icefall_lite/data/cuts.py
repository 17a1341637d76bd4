"""Where a recipe's cut manifests live and how to open them.

Layout (icefall's): ``<manifest_dir>/<prefix>_cuts_<split>.jsonl.gz``, e.g.
``data/fbank/librispeech_cuts_train-clean-100.jsonl.gz`` or ``data/fbank/synth_cuts_dev.jsonl.gz``.
"""

from pathlib import Path
from typing import Union

from lhotse import CutSet

__all__ = ["cuts_filename", "load_cuts", "load_cut_file"]

PathLike = Union[str, Path]


def cuts_filename(manifest_dir: PathLike, prefix: str, split: str) -> Path:
    """``<manifest_dir>/<prefix>_cuts_<split>.jsonl.gz``."""
    return Path(manifest_dir) / f"{prefix}_cuts_{split}.jsonl.gz"


def load_cut_file(filename: PathLike, made_by: str = "prepare.sh's fbank stage") -> CutSet:
    """Open a cut manifest lazily; a missing file is a one-line error naming what makes it."""
    filename = Path(filename)
    if not filename.is_file():
        raise FileNotFoundError(f"cut manifest {filename} not found: it is made by {made_by}")
    return CutSet.from_jsonl_lazy(filename)


def load_cuts(
    manifest_dir: PathLike,
    prefix: str,
    split: str,
    made_by: str = "prepare.sh's fbank stage",
) -> CutSet:
    """Lazily open ``<manifest_dir>/<prefix>_cuts_<split>.jsonl.gz``.

    Args:
      manifest_dir: e.g. ``data/fbank``.
      prefix: dataset name, e.g. ``synth`` or ``librispeech``.
      split: e.g. ``train``, ``dev``, ``test-human``, ``train-clean-100``.
      made_by: named in the error when the file is missing (which prepare.sh stage makes it).
    """
    return load_cut_file(cuts_filename(manifest_dir, prefix, split), made_by=made_by)
