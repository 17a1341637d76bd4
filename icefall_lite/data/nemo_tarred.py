"""NeMo tarred audio datasets: audio files in tar shards, one manifest line per utterance.

NeMo's layout, read directly (no unpacking)::

    audio_0.tar, audio_1.tar, ...        the audio files (wav, flac, ...) as tar members
    tarred_audio_manifest.json           {"audio_filepath": "<member name>", "duration": ...,
                                          "text": ..., "shard_id": k[, "offset": ...]} per line

(or one manifest per shard, ``manifest_0.json`` ...). Shard ``k`` is the k-th tar file of the
list, as NeMo's ``tarred_audio_filepaths`` with its brace pattern ``audio_{0..N}.tar`` gives it.

:func:`nemo_tarred_cuts` is a lazy CutSet: each iteration streams the tar files in order and
yields a cut per manifest line whose member it meets, its audio held in memory. A line that
cannot be used (see :mod:`icefall_lite.data.nemo`; here also a member missing from its shard,
undecodable audio, an offset past the end) is logged with its line number and skipped, so
iterating never stops mid-epoch; ``strict=True`` raises instead.
"""

import logging
import re
import tarfile
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple, Union

from lhotse import CutSet, MonoCut, Recording
from lhotse.cut import Cut
from lhotse.utils import fastcopy

from icefall_lite.data.nemo import (
    END_TOLERANCE,
    ManifestEntry,
    ManifestReport,
    _segment_id,
    _supervision,
    read_nemo_manifest,
    write_nemo_manifest,
)

__all__ = ["NeMoTarredIterator", "expand_braces", "nemo_tarred_cuts", "write_nemo_tarred"]

PathLike = Union[str, Path]

_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand_braces(pattern: str) -> List[str]:
    """``audio_{0..2}.tar`` -> ``["audio_0.tar", "audio_1.tar", "audio_2.tar"]`` (NeMo's and
    WebDataset's shard pattern; several ranges expand as a product; no braces: ``[pattern]``)."""
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    first, last = int(match.group(1)), int(match.group(2))
    width = len(match.group(1)) if match.group(1).startswith("0") else 0
    expanded = []
    for number in range(first, last + 1):
        head = pattern[: match.start()] + f"{number:0{width}d}"
        expanded.extend(head + rest for rest in expand_braces(pattern[match.end() :]))
    return expanded


def _as_paths(paths: Union[PathLike, Sequence[PathLike]]) -> List[str]:
    if isinstance(paths, (str, Path)):
        return expand_braces(str(paths))
    return [str(path) for path in paths]


class NeMoTarredIterator:
    """Iterable of cuts (audio in memory) from NeMo tar shards and their manifest(s).

    Args:
      manifests: one manifest (with ``shard_id`` on each line) or one per shard; a brace
        pattern or a list.
      tars: the tar shards in shard-id order; a brace pattern (``audio_{0..7}.tar``) or a list.
      strict: raise :class:`~icefall_lite.data.nemo.ManifestError` on a bad line.
      require_text: an entry without text is bad (False for unlabeled audio).
    Raises:
      FileNotFoundError: a manifest or tar is missing (checked here, before any reading).
      ValueError: neither one manifest nor one per tar.
    """

    def __init__(
        self,
        manifests: Union[PathLike, Sequence[PathLike]],
        tars: Union[PathLike, Sequence[PathLike]],
        strict: bool = False,
        require_text: bool = True,
    ) -> None:
        self.manifests = _as_paths(manifests)
        self.tars = _as_paths(tars)
        self.strict = strict
        self.require_text = require_text
        if len(self.manifests) not in (1, len(self.tars)):
            raise ValueError(
                f"{len(self.manifests)} manifests for {len(self.tars)} tar shards: give one "
                "manifest with shard_id, or one per shard"
            )
        for what, paths in (("manifest", self.manifests), ("tar shard", self.tars)):
            missing = [path for path in paths if not Path(path).is_file()]
            if missing:
                raise FileNotFoundError(
                    f"NeMo {what}(s) not found: {', '.join(missing[:5])}"
                    + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                )

    def _entries_by_shard(self) -> Dict[int, Dict[str, List[Tuple[ManifestReport, ManifestEntry]]]]:
        """shard id -> member name -> (report, entry) in manifest order, validated (no audio
        yet: the audio is inside the tars)."""
        shards: Dict[int, Dict[str, list]] = defaultdict(lambda: defaultdict(list))
        self._reports = []
        for index, manifest in enumerate(self.manifests):
            report = ManifestReport(manifest)
            self._reports.append(report)
            for entry in read_nemo_manifest(
                manifest,
                data_dir="",
                strict=self.strict,
                check_audio=False,
                report=report,
                require_text=self.require_text,
            ):
                shard = entry.extra.get("shard_id", index if len(self.manifests) > 1 else None)
                if isinstance(shard, bool) or not isinstance(shard, int):
                    shard = -1
                if not 0 <= shard < len(self.tars):
                    _drop(
                        report,
                        entry,
                        "bad shard_id",
                        f"{entry.extra.get('shard_id')!r} "
                        f"(there are {len(self.tars)} tar shards)",
                        self.strict,
                    )
                    continue
                shards[shard][entry.audio_path].append((report, entry))
        return shards

    def __iter__(self) -> Iterator[Cut]:
        shards = self._entries_by_shard()
        for shard_id, tar_path in enumerate(self.tars):
            wanted = shards.get(shard_id, {})
            seen = set()
            try:
                with tarfile.open(tar_path, mode="r|*") as tar:  # streamed, sequential reads
                    for member in tar:
                        if not member.isfile() or member.name not in wanted:
                            continue
                        data = tar.extractfile(member).read()
                        seen.add(member.name)
                        yield from self._cuts(tar_path, member.name, data, wanted[member.name])
            except (tarfile.TarError, EOFError, OSError) as error:
                # A truncated or corrupt shard: what it held up to here was used; its other
                # entries are reported missing below. Training goes on with the next shard.
                logging.error(f"{tar_path}: unreadable after {len(seen)} members: {error}")
            for name, entries in wanted.items():
                if name not in seen:
                    for report, entry in entries:
                        detail = f"{name} is not in {tar_path}"
                        _drop(report, entry, "missing file", detail, self.strict)
        for report in self._reports:
            (logging.warning if report.problems else logging.info)(report.summary())

    def _cuts(self, tar_path: str, name: str, data: bytes, entries: list) -> Iterator[Cut]:
        recording_id = Path(name).with_suffix("").as_posix().replace("/", "_")
        where = f"{tar_path}:{name}"
        try:
            recording = Recording.from_bytes(data, recording_id=recording_id)
        except Exception as error:  # any decoder failure: the member is not usable audio
            for report, entry in entries:
                _drop(report, entry, "unreadable audio", f"{where}: {error}", self.strict)
            return
        for report, entry in entries:
            end = entry.offset + entry.duration
            if entry.offset >= recording.duration:
                detail = f"offset {entry.offset} s >= {recording.duration:.3f} s of {where}"
                _drop(report, entry, "offset past end", detail, self.strict)
                continue
            if end > recording.duration + END_TOLERANCE:
                detail = f"offset + duration {end} s > {recording.duration:.3f} s of {where}"
                _drop(report, entry, "segment past end", detail, self.strict)
                continue
            segment_id = _segment_id(recording_id, entry.offset)
            duration = min(entry.duration, recording.duration - entry.offset)
            supervision = _supervision(entry, segment_id, recording_id)
            yield MonoCut(
                id=segment_id,
                start=entry.offset,
                duration=duration,
                channel=0,
                recording=recording,
                supervisions=[fastcopy(supervision, start=0.0, duration=duration)],
            )


def _drop(
    report: ManifestReport, entry: ManifestEntry, reason: str, detail: str, strict: bool
) -> None:
    """An entry counted as kept by the manifest reader that turned out unusable."""
    report.num_kept -= 1
    report.add_problem(entry.line, reason, detail, strict)


def nemo_tarred_cuts(
    manifests: Union[PathLike, Sequence[PathLike]],
    tars: Union[PathLike, Sequence[PathLike]],
    strict: bool = False,
    require_text: bool = True,
) -> CutSet:
    """A lazy CutSet over a NeMo tarred audio dataset (see :class:`NeMoTarredIterator`)."""
    return CutSet(NeMoTarredIterator(manifests, tars, strict=strict, require_text=require_text))


def write_nemo_tarred(
    cuts: Iterable[Cut], out_dir: PathLike, num_shards: int, manifest_name: str = ""
) -> List[str]:
    """Write cuts with single-file recordings as a NeMo tarred dataset in ``out_dir``:
    ``audio_<k>.tar`` (each recording's file once, round-robin over the shards) and
    ``tarred_audio_manifest.json`` (``shard_id`` per line). Returns the tar paths. For tests and
    benchmarks; each tar is written as ``.tmp`` and renamed when complete."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tar_paths = [out_dir / f"audio_{k}.tar" for k in range(num_shards)]
    tmp_paths = [path.with_name(path.name + ".tmp") for path in tar_paths]
    tars = [tarfile.open(path, "w") for path in tmp_paths]
    members: Dict[str, tuple] = {}  # source file -> (shard, member name)
    lines = []
    try:
        for cut in cuts:
            source = cut.recording.sources[0].source
            if source not in members:
                shard = len(members) % num_shards
                member = f"{cut.recording.id}{Path(source).suffix}"
                tars[shard].add(source, arcname=member)
                members[source] = (shard, member)
            shard, member = members[source]
            line = {
                "audio_filepath": member,
                "duration": cut.duration,
                "text": cut.supervisions[0].text,
                "shard_id": shard,
            }
            if cut.start:
                line["offset"] = cut.start
            lines.append(line)
    finally:
        for tar in tars:
            tar.close()
    for tmp, path in zip(tmp_paths, tar_paths):
        tmp.replace(path)
    write_nemo_manifest(lines, out_dir / (manifest_name or "tarred_audio_manifest.json"))
    return [str(path) for path in tar_paths]
