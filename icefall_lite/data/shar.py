"""Lhotse Shar shards: cuts and their features (and/or audio) in sequentially read tar files.

Layout of one split (what :func:`write_shar` makes, what :func:`load_shar_cuts` reads)::

    <shar_dir>/<prefix>_<split>/cuts.000000.jsonl.gz       the cuts of shard 0
    <shar_dir>/<prefix>_<split>/features.000000.tar        their fbank (numpy, or lilcom)
    <shar_dir>/<prefix>_<split>/recording.000000.tar       their audio (if "recording" was asked)
    <shar_dir>/<prefix>_<split>/shar.json                  written last: fields, cuts, shards

Writing is atomic: the shards go to ``<name>.partial-<pid>/``, ``shar.json`` is written there
last, and the folder is then renamed to ``<name>`` (one ``rename``). A writer killed at any
point leaves only a ``.partial-*`` folder, which no reader opens and the next writer removes;
a folder without ``shar.json`` is refused.

Reading keeps the shards in their written order (no shard shuffling), so a sampler over the
Shar cuts sees the same cut sequence as over the cut manifest the shards were written from:
the same seed gives the same batches, and the training sampler's exact mid-epoch resume
works unchanged (fast-forwarding reads the shards up to the resume point).
"""

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Dict, Optional, Union

from lhotse import CutSet

__all__ = ["SHAR_INFO", "load_shar_cuts", "shar_split_dir", "write_shar"]

PathLike = Union[str, Path]

SHAR_INFO = "shar.json"  # the completion marker, written last


def shar_split_dir(shar_dir: PathLike, prefix: str, split: str) -> Path:
    """``<shar_dir>/<prefix>_<split>``."""
    return Path(shar_dir) / f"{prefix}_{split}"


def write_shar(
    cuts: CutSet,
    out_dir: PathLike,
    fields: Optional[Dict[str, str]] = None,
    shard_size: int = 1000,
    overwrite: bool = False,
) -> Path:
    """Write ``cuts`` as Shar shards in ``out_dir``, atomically.

    Args:
      cuts: cuts with the data named in ``fields`` (e.g. features from the fbank stage).
      out_dir: the split's folder, e.g. ``data/shar/synth_train``.
      fields: Lhotse Shar fields and their codecs; default ``{"features": "numpy"}``
        (lossless: training reads exactly the features of the cut manifest; ``"lilcom"`` is
        ~4x smaller but compresses them a second time, changing values by up to 1/64;
        ``{"recording": "flac"}`` stores audio).
      shard_size: cuts per shard.
      overwrite: replace a complete ``out_dir``; otherwise it is kept and returned.
    Returns:
      ``out_dir``.
    """
    out_dir = Path(out_dir)
    fields = dict(fields or {"features": "numpy"})
    if (out_dir / SHAR_INFO).is_file() and not overwrite:
        logging.info(f"{out_dir} is complete ({SHAR_INFO}), keeping it")
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.glob(f"{out_dir.name}.partial-*"):
        logging.info(f"removing {stale}, left by an interrupted writer")
        shutil.rmtree(stale)
    partial = out_dir.parent / f"{out_dir.name}.partial-{os.getpid()}"
    partial.mkdir()
    try:
        paths = cuts.to_shar(
            partial, fields=fields, shard_size=shard_size, warn_unused_fields=False
        )
        num_cuts = sum(sum(1 for _ in CutSet.from_jsonl_lazy(p)) for p in paths["cuts"])
        info = {
            "fields": fields,
            "shard_size": shard_size,
            "num_shards": len(paths["cuts"]),
            "num_cuts": num_cuts,
        }
        tmp_info = partial / (SHAR_INFO + ".tmp")
        tmp_info.write_text(json.dumps(info, indent=2) + "\n")
        _fsync_tree(partial)
        os.replace(tmp_info, partial / SHAR_INFO)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.rename(partial, out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    logging.info(f"wrote {out_dir}: {info['num_cuts']} cuts in {info['num_shards']} shards")
    return out_dir


def _fsync_tree(folder: Path) -> None:
    """Flush the shard files to disk before the rename makes them visible."""
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def load_shar_cuts(split_dir: PathLike, made_by: str = "prepare.sh's Shar stage") -> CutSet:
    """Lazily open the Shar shards of one split, in written order, with their data fields.

    Raises FileNotFoundError naming ``made_by`` when ``split_dir`` or its ``shar.json`` (the
    completion marker) is missing.
    """
    split_dir = Path(split_dir)
    info_path = split_dir / SHAR_INFO
    if not info_path.is_file():
        what = "incomplete (no shar.json)" if split_dir.is_dir() else "not found"
        raise FileNotFoundError(f"Shar folder {split_dir} {what}: it is made by {made_by}")
    info = json.loads(info_path.read_text())
    shards = {"cuts": sorted(str(p) for p in split_dir.glob("cuts.*.jsonl.gz"))}
    for name in info["fields"]:
        shards[name] = sorted(str(p) for p in split_dir.glob(f"{name}.*.tar"))
    counts = {name: len(paths) for name, paths in shards.items()}
    if set(counts.values()) != {info["num_shards"]}:
        raise ValueError(f"{split_dir}: expected {info['num_shards']} shards per field, {counts}")
    return CutSet.from_shar(fields=shards, shuffle_shards=False)
