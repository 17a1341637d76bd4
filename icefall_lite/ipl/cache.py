"""The pseudo-label cache: cut id -> label, one JSON-lines file, replaced atomically.

File layout (gzip-compressed when the name ends in ``.gz``)::

    {"ipl_cache": 1, "generation": 3, "num_labels": 2, "digest": "<sha256>"}
    {"id": "cut-a", "text": "HELLO WORLD", "confidence": 0.91, "generation": 3}
    {"id": "cut-b", "text": "GOOD MORNING", "confidence": 0.87, "generation": 2}

``generation`` counts labelling passes (0: no labels yet); each label records the pass that
made it, so a partial refresh (``--ipl-p-cache``) leaves older labels visible as older. The
digest covers the label lines, so a file cut short or edited is detected when read, and a
training checkpoint that stores (generation, digest) can tell whether the file on disk is the
cache it trained with.

Writing goes through a temporary file and a rename (:func:`icefall_lite.utils.atomic_open`):
readers see the old file or the complete new one. Before a new generation replaces the file,
the old one is copied to ``<stem>.prev.<suffixes>`` (also atomically): a run killed after the
new cache was published but before its next checkpoint resumes from the previous generation
exactly.
"""

import gzip
import hashlib
import io
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Union

from icefall_lite.errors import UsageError
from icefall_lite.utils import atomic_open

__all__ = [
    "CACHE_FORMAT",
    "CacheError",
    "PseudoLabel",
    "PseudoLabelCache",
    "previous_path",
]

PathLike = Union[str, Path]

CACHE_FORMAT = 1  # the "ipl_cache" value of the header line


class CacheError(UsageError):
    """A cache file that cannot be used (unreadable, cut short, naming unknown cuts)."""


@dataclass(frozen=True)
class PseudoLabel:
    """One cut's label.

    Attributes:
      text: the transcript (never empty).
      confidence: in (0, 1]; the per-frame geometric mean probability of the search's best
        path (see :func:`icefall_lite.ipl.labeller.confidence_of`).
      generation: the labelling pass that made it (>= 1).
    """

    text: str
    confidence: float
    generation: int


def previous_path(path: PathLike) -> Path:
    """Where the generation before the current one is kept: ``ipl-cache.jsonl.gz`` ->
    ``ipl-cache.prev.jsonl.gz`` (same format)."""
    path = Path(path)
    stem, dot, suffixes = path.name.partition(".")
    return path.with_name(f"{stem}.prev{dot}{suffixes}")


def _label_line(cut_id: str, label: PseudoLabel) -> str:
    return json.dumps(
        {
            "id": cut_id,
            "text": label.text,
            "confidence": round(float(label.confidence), 6),
            "generation": label.generation,
        },
        ensure_ascii=False,
    )


class PseudoLabelCache:
    """The labels of one generation (a plain mapping cut id -> :class:`PseudoLabel`).

    Args:
      labels: cut id -> label.
      generation: labelling passes so far (0 = none).
    """

    def __init__(self, labels: Optional[Dict[str, PseudoLabel]] = None, generation: int = 0):
        self.labels: Dict[str, PseudoLabel] = dict(labels or {})
        self.generation = generation

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, cut_id: str) -> bool:
        return cut_id in self.labels

    def get(self, cut_id: str) -> Optional[PseudoLabel]:
        return self.labels.get(cut_id)

    def _lines(self) -> List[str]:
        return [_label_line(cut_id, self.labels[cut_id]) for cut_id in sorted(self.labels)]

    def digest(self) -> str:
        """sha256 of the label lines as written (sorted by cut id): two caches with the same
        digest hold the same labels."""
        sha = hashlib.sha256()
        for line in self._lines():
            sha.update(line.encode("utf-8") + b"\n")
        return sha.hexdigest()

    def state(self) -> Dict[str, object]:
        """What a training checkpoint stores to find this cache again: generation, size,
        digest."""
        return {
            "generation": self.generation,
            "num_labels": len(self.labels),
            "digest": self.digest(),
        }

    def updated(self, new_labels: Dict[str, Optional[PseudoLabel]]) -> "PseudoLabelCache":
        """The next generation: ``new_labels`` (cut id -> label, or None when relabelling
        failed or was filtered out, which removes the cut's old label) over this one."""
        labels = dict(self.labels)
        for cut_id, label in new_labels.items():
            if label is None:
                labels.pop(cut_id, None)
            else:
                labels[cut_id] = label
        return PseudoLabelCache(labels, self.generation + 1)

    # ------------------------------------------------------------------ files
    def write(self, path: PathLike, keep_previous: bool = True) -> None:
        """Publish this cache at ``path`` atomically; the file it replaces is first kept as
        ``<stem>.prev.<suffixes>`` (see the module docstring)."""
        path = Path(path)
        if keep_previous and path.is_file():
            with atomic_open(previous_path(path), "wb") as out, open(path, "rb") as source:
                shutil.copyfileobj(source, out)
        lines = self._lines()
        header = {
            "ipl_cache": CACHE_FORMAT,
            "generation": self.generation,
            "num_labels": len(lines),
            "digest": self.digest(),
        }
        text = json.dumps(header) + "\n" + "".join(line + "\n" for line in lines)
        data = text.encode("utf-8")
        if path.suffix == ".gz":
            # mtime=0: the same labels give the same bytes (the file can be compared).
            buffer = io.BytesIO()
            with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
                gz.write(data)
            data = buffer.getvalue()
        with atomic_open(path, "wb") as f:
            f.write(data)
        logging.info(
            f"Pseudo-label cache {path}: generation {self.generation}, {len(lines)} labels"
        )

    @classmethod
    def read(cls, path: PathLike) -> "PseudoLabelCache":
        """Read a cache file written by :meth:`write`.

        Raises:
          FileNotFoundError: no such file.
          CacheError: not a cache, or cut short / edited (the digest differs).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"pseudo-label cache {path} not found")
        try:
            data = path.read_bytes()
            if data[:2] == b"\x1f\x8b":  # gzip, whatever the name
                data = gzip.decompress(data)
            text = data.decode("utf-8")
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except (OSError, EOFError, UnicodeDecodeError, ValueError) as error:
            raise CacheError(f"pseudo-label cache {path}: unreadable ({error})") from None
        if not rows or not isinstance(rows[0], dict) or rows[0].get("ipl_cache") != CACHE_FORMAT:
            raise CacheError(
                f"pseudo-label cache {path}: not an icefall-lite IPL cache (its first line "
                f'must be the header with "ipl_cache": {CACHE_FORMAT})'
            )
        header, body = rows[0], rows[1:]
        try:
            labels = {
                row["id"]: PseudoLabel(
                    text=str(row["text"]),
                    confidence=float(row["confidence"]),
                    generation=int(row["generation"]),
                )
                for row in body
            }
            cache = cls(labels, int(header["generation"]))
        except (KeyError, TypeError, ValueError) as error:
            raise CacheError(f"pseudo-label cache {path}: bad entry ({error!r})") from None
        if len(labels) != header.get("num_labels") or cache.digest() != header.get("digest"):
            raise CacheError(
                f"pseudo-label cache {path}: {len(labels)} labels do not match its header "
                f"({header.get('num_labels')} labels, digest): the file was cut short or "
                "edited; delete it (labels are made again) or restore it"
            )
        return cache

    def check_cuts_exist(self, cut_ids: Iterable[str], path: PathLike, source: str) -> None:
        """Raise :class:`CacheError` when the cache names cuts not among ``cut_ids``.

        Args:
          cut_ids: the ids of the unlabeled cuts this run has.
          path, source: the cache file and the unlabeled set, named in the error.
        """
        known = set(cut_ids)
        unknown = [cut_id for cut_id in self.labels if cut_id not in known]
        if unknown:
            raise CacheError(
                f"pseudo-label cache {path} names {len(unknown)} cut(s) that are not in "
                f"--ipl-unlabeled-cuts {source} (e.g. {', '.join(sorted(unknown)[:3])}): the "
                "cache was made for another unlabeled set; pass another --ipl-cache, or delete "
                "this one to label again"
            )
