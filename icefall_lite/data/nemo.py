"""NeMo (and Myrtle.ai RNN-T) JSON manifests <-> Lhotse recordings, supervisions and cuts.

A NeMo manifest is JSON lines, one utterance (or one segment of a longer file) a line::

    {"audio_filepath": "wav/a.wav", "duration": 2.31, "text": "hello world"}
    {"audio_filepath": "/abs/long.flac", "offset": 12.5, "duration": 4.0, "text": "a segment"}

``audio_filepath`` may be relative: it is resolved against the manifest's folder. ``offset``
(seconds, default 0) and ``duration`` (seconds) select the segment. Other keys (``speaker``,
``lang``, anything else) are kept: ``speaker`` and ``lang`` become the supervision's speaker and
language, the rest its ``custom`` dict, and all of them are written back by :func:`cuts_to_nemo`.

Myrtle.ai's RNN-T manifests are one JSON array of ``{"transcript": ..., "files": [{"fname":
...}, ...], "original_duration": ...}``; :func:`read_nemo_manifest` reads them too (the first
file of each entry; ``fname`` relative to ``data_dir``, by default the manifest's folder).

Bad entries (invalid JSON, no or missing audio file, zero/negative duration, an offset at or
past the end of the audio, a segment running past it, empty text, a duplicate segment) are
logged with their line number (``path:line: reason: detail``) and skipped, or raise
:class:`ManifestError` with ``strict=True``. Converted cuts are therefore safe to train on: no
entry that would fail mid-epoch gets through.
"""

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from lhotse import CutSet, MonoCut, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.cut import Cut
from lhotse.utils import fastcopy

from icefall_lite.errors import UsageError

__all__ = [
    "ManifestEntry",
    "ManifestError",
    "ManifestReport",
    "PRED_TEXT",
    "cuts_to_nemo",
    "entry_line",
    "manifests_to_nemo",
    "nemo_line",
    "nemo_to_cuts",
    "nemo_to_manifests",
    "read_nemo_manifest",
    "write_nemo_manifest",
    "write_nemo_predictions",
]

PathLike = Union[str, Path]

# A segment may end this many seconds past the audio's end (durations in manifests are often
# rounded to 10 ms); further is an error. The cut is clipped to the audio.
END_TOLERANCE = 0.05

# Keys with a meaning of their own; every other key is kept in the supervision's custom dict.
_SPEAKER_KEY, _LANGUAGE_KEY = "speaker", "lang"
_KNOWN_KEYS = {"audio_filepath", "duration", "offset", "text", _SPEAKER_KEY, _LANGUAGE_KEY}

# The key of a transcript in NeMo's output manifests (transcribe_speech.py's).
PRED_TEXT = "pred_text"


class ManifestError(UsageError):
    """A manifest entry that cannot be used (raised with ``strict=True``): ``path:line: ...``."""


@dataclass
class ManifestEntry:
    """One usable manifest line.

    Attributes:
      line: 1-based line number (entry number in a Myrtle JSON array).
      audio_path: the audio file, resolved (absolute if the manifest's folder was).
      duration, offset: seconds.
      text: the transcript.
      extra: the line's other keys (``speaker``, ``lang``, ``shard_id``, ...).
    """

    line: int
    audio_path: str
    duration: float
    offset: float
    text: str
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class ManifestReport:
    """What reading a manifest kept and what it skipped (``(line, reason, detail)`` each)."""

    path: str
    num_kept: int = 0
    problems: List[Tuple[int, str, str]] = field(default_factory=list)

    def add_problem(self, line: int, reason: str, detail: str, strict: bool) -> None:
        message = f"{self.path}:{line}: {reason}: {detail}"
        if strict:
            raise ManifestError(message)
        logging.warning(f"{message} (skipped)")
        self.problems.append((line, reason, detail))

    def summary(self) -> str:
        reasons: Dict[str, int] = {}
        for _, reason, _ in self.problems:
            reasons[reason] = reasons.get(reason, 0) + 1
        text = f"{self.path}: kept {self.num_kept}, skipped {len(self.problems)}"
        if reasons:
            text += " (" + ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items())) + ")"
        return text


# ---------------------------------------------------------------------------------- reading
def _raw_entries(path: Path) -> Iterator[Tuple[int, Any]]:
    """``(line number, parsed JSON or the exception)`` for each non-blank line, or for each
    element of a Myrtle-style top-level JSON array (numbered from 1)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("["):
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as error:
            yield error.lineno, error
            return
        for number, entry in enumerate(entries, start=1):
            yield number, _from_myrtle(entry)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            yield number, error


def _from_myrtle(entry: Any) -> Any:
    """A Myrtle entry as a NeMo line (``fname`` of the first file, ``transcript``)."""
    if not isinstance(entry, dict) or "files" not in entry:
        return entry
    files = entry.get("files") or [{}]
    line = {
        key: value
        for key, value in entry.items()
        if key not in ("files", "transcript", "original_duration", "original_num_samples")
    }
    line["audio_filepath"] = files[0].get("fname")
    line["text"] = entry.get("transcript", "")
    duration = files[0].get("duration", entry.get("original_duration"))
    if duration is not None:
        line["duration"] = duration
    return line


class _AudioInfo:
    """Audio durations read once per file (many segments may share one long file)."""

    def __init__(self) -> None:
        self._recordings: Dict[str, Recording] = {}

    def __call__(self, path: str) -> Recording:
        if path not in self._recordings:
            self._recordings[path] = Recording.from_file(path, recording_id="_")
        return self._recordings[path]


def read_nemo_manifest(
    path: PathLike,
    data_dir: Optional[PathLike] = None,
    strict: bool = False,
    check_audio: bool = True,
    report: Optional[ManifestReport] = None,
    require_text: bool = True,
) -> Iterator[ManifestEntry]:
    """The usable entries of a NeMo JSON-lines (or Myrtle JSON-array) manifest, in order.

    Args:
      path: the manifest.
      data_dir: folder relative ``audio_filepath`` values are resolved against; default the
        manifest's folder.
      strict: raise :class:`ManifestError` at the first bad entry instead of skipping it.
      check_audio: open each audio file's header to check that it exists, that it is audio
        and that ``offset``/``duration`` lie within it (a tarred manifest's files are
        inside tar shards, so :mod:`nemo_tarred` passes False).
      report: filled with what was kept and skipped (a new one is logged if not given).
      require_text: an entry without ``text`` is bad (training, scoring); False for a
        manifest of audio to transcribe (its text, if any, is kept) or of unlabeled audio
        (an entry without text then carries ``text`` ""; see :mod:`icefall_lite.ipl`).
    Yields:
      :class:`ManifestEntry` per usable entry.
    """
    path = Path(path)
    base = Path(data_dir) if data_dir is not None else path.parent
    own_report = report is None
    report = report if report is not None else ManifestReport(str(path))
    audio_info = _AudioInfo()
    seen = set()
    for number, line in _raw_entries(path):
        entry = _check_entry(
            number, line, base, check_audio, audio_info, report, strict, require_text
        )
        if entry is None:
            continue
        key = (entry.audio_path, entry.offset, entry.duration)
        if key in seen:
            report.add_problem(number, "duplicate", f"{entry.audio_path} again", strict)
            continue
        seen.add(key)
        report.num_kept += 1
        yield entry
    if own_report:
        (logging.warning if report.problems else logging.info)(report.summary())


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _check_entry(
    number: int,
    line: Any,
    base: Path,
    check_audio: bool,
    audio_info: _AudioInfo,
    report: ManifestReport,
    strict: bool,
    require_text: bool = True,
) -> Optional[ManifestEntry]:
    def bad(reason: str, detail: str) -> None:
        report.add_problem(number, reason, detail, strict)

    if isinstance(line, json.JSONDecodeError):
        return bad("invalid JSON", str(line))
    if not isinstance(line, dict):
        return bad("invalid JSON", f"expected an object, got {type(line).__name__}")
    audio = line.get("audio_filepath")
    if not isinstance(audio, str) or not audio:
        return bad("no audio_filepath", "the key is missing or empty")
    duration = _number(line.get("duration"))
    if duration is None:
        return bad("bad duration", f"duration {line.get('duration')!r} is not a number")
    if duration <= 0:
        return bad("bad duration", f"duration {duration} s is not positive")
    offset = _number(line.get("offset", 0.0))
    if offset is None or offset < 0:
        return bad("bad offset", f"offset {line.get('offset')!r} is not a number >= 0")
    text = line.get("text")
    if not require_text and text is None:
        text = ""
    elif not isinstance(text, str) or (require_text and not text.strip()):
        return bad("empty text", f"text {text!r}")
    audio_path = audio if os.path.isabs(audio) else str(base / audio)
    if check_audio:
        if not os.path.isfile(audio_path):
            return bad("missing file", audio_path)
        try:
            recording = audio_info(audio_path)
        except Exception as error:  # any decoder failure: the file is not usable audio
            return bad("unreadable audio", f"{audio_path}: {error}")
        if offset >= recording.duration:
            return bad(
                "offset past end",
                f"offset {offset} s >= {recording.duration:.3f} s of {audio_path}",
            )
        if offset + duration > recording.duration + END_TOLERANCE:
            return bad(
                "segment past end",
                f"offset {offset} s + duration {duration} s > {recording.duration:.3f} s "
                f"of {audio_path}",
            )
    extra = {key: value for key, value in line.items() if key not in _KNOWN_KEYS}
    for key in (_SPEAKER_KEY, _LANGUAGE_KEY):
        if key in line:
            extra[key] = line[key]
    return ManifestEntry(number, audio_path, duration, offset, text, extra)


# ---------------------------------------------------------------------------------- to Lhotse
def _recording_id(audio_path: str, base: Path) -> str:
    """The path relative to the manifest's folder (or as given), without its suffix, with
    ``/`` as ``_`` (ids become file names inside feature archives and Shar tars)."""
    try:
        relative = Path(audio_path).resolve().relative_to(base.resolve())
    except ValueError:
        relative = Path(audio_path.lstrip(os.sep))
    return str(relative.with_suffix("")).replace(os.sep, "_")


def _segment_id(recording_id: str, offset: float) -> str:
    if offset == 0:
        return recording_id
    return f"{recording_id}-{int(round(offset * 1000)):08d}"


def _supervision(entry: ManifestEntry, segment_id: str, recording_id: str) -> SupervisionSegment:
    custom = {k: v for k, v in entry.extra.items() if k not in (_SPEAKER_KEY, _LANGUAGE_KEY)}
    return SupervisionSegment(
        id=segment_id,
        recording_id=recording_id,
        start=entry.offset,
        duration=entry.duration,
        channel=0,
        text=entry.text,
        speaker=entry.extra.get(_SPEAKER_KEY),
        language=entry.extra.get(_LANGUAGE_KEY),
        custom=custom or None,
    )


def nemo_to_manifests(
    path: PathLike,
    data_dir: Optional[PathLike] = None,
    strict: bool = False,
) -> Tuple[RecordingSet, SupervisionSet]:
    """A NeMo/Myrtle manifest as a Lhotse RecordingSet (one recording per audio file) and
    SupervisionSet (one supervision per entry, ``start`` = the entry's offset).

    Bad entries are skipped with a logged line number (see the module docstring), or raise
    :class:`ManifestError` with ``strict``. Multi-channel audio: channel 0 is transcribed.
    """
    recordings, supervisions = _convert(path, data_dir, strict)
    return RecordingSet.from_recordings(recordings.values()), SupervisionSet.from_segments(
        supervisions
    )


def _convert(
    path: PathLike, data_dir: Optional[PathLike], strict: bool, require_text: bool = True
) -> Tuple[Dict[str, Recording], List[SupervisionSegment]]:
    path = Path(path)
    base = Path(data_dir) if data_dir is not None else path.parent
    recordings: Dict[str, Recording] = {}  # by audio path
    ids: Dict[str, str] = {}  # recording id -> audio path (to catch two paths, one id)
    supervisions = []
    for entry in read_nemo_manifest(
        path, data_dir=data_dir, strict=strict, require_text=require_text
    ):
        if entry.audio_path not in recordings:
            recording_id = _recording_id(entry.audio_path, base)
            if recording_id in ids:
                recording_id = f"{recording_id}-{len(ids)}"
            ids[recording_id] = entry.audio_path
            recordings[entry.audio_path] = Recording.from_file(
                entry.audio_path, recording_id=recording_id
            )
        recording = recordings[entry.audio_path]
        segment_id = _segment_id(recording.id, entry.offset)
        supervisions.append(_supervision(entry, segment_id, recording.id))
    return recordings, supervisions


def nemo_to_cuts(
    path: PathLike,
    data_dir: Optional[PathLike] = None,
    strict: bool = False,
    require_text: bool = True,
) -> CutSet:
    """A NeMo/Myrtle manifest as cuts: one cut per entry spanning exactly its segment
    (``start`` = offset, ``duration``; clipped to the audio within the 50 ms tolerance), its
    supervision covering the whole cut. Bad entries: see :func:`nemo_to_manifests`; with
    ``require_text=False`` (unlabeled audio) an entry without text is kept, its supervision's
    text ""."""
    recordings, supervisions = _convert(path, data_dir, strict, require_text)
    by_id = {recording.id: recording for recording in recordings.values()}
    cuts = []
    for supervision in supervisions:
        recording = by_id[supervision.recording_id]
        duration = min(supervision.duration, recording.duration - supervision.start)
        cuts.append(
            MonoCut(
                id=supervision.id,
                start=supervision.start,
                duration=duration,
                channel=0,
                recording=recording,
                supervisions=[fastcopy(supervision, start=0.0, duration=duration)],
            )
        )
    return CutSet.from_cuts(cuts)


# ---------------------------------------------------------------------------------- to NeMo
def _audio_filepath(recording: Recording, out_dir: Path, relative: bool, name: str) -> str:
    files = [source for source in recording.sources if source.type == "file"]
    if len(recording.sources) != 1 or not files:
        raise ValueError(
            f"{name}: recording {recording.id} is not one audio file "
            f"(sources: {[source.type for source in recording.sources]}); NeMo manifests "
            "name one file per entry"
        )
    source = Path(files[0].source)
    if relative:
        try:
            return str(source.resolve().relative_to(out_dir.resolve()))
        except ValueError:
            pass
    return str(source.resolve())


def _nemo_line(
    supervision: SupervisionSegment,
    recording: Recording,
    offset: float,
    duration: float,
    out_dir: Path,
    relative: bool,
    name: str,
) -> Dict[str, Any]:
    line: Dict[str, Any] = {
        "audio_filepath": _audio_filepath(recording, out_dir, relative, name),
        "duration": duration,
        "text": supervision.text or "",
    }
    if offset:
        line["offset"] = offset
    if supervision.speaker is not None:
        line[_SPEAKER_KEY] = supervision.speaker
    if supervision.language is not None:
        line[_LANGUAGE_KEY] = supervision.language
    line.update(supervision.custom or {})
    return line


def nemo_line(cut: Cut, out_dir: Optional[PathLike] = None) -> Dict[str, Any]:
    """The NeMo manifest line of one cut (one supervision, one audio file): audio path
    relative to ``out_dir`` when given and below it, else absolute."""
    if not cut.has_recording or len(cut.supervisions) != 1:
        raise ValueError(
            f"cut {cut.id} needs a recording and exactly one supervision "
            f"(has {len(cut.supervisions)}); NeMo manifests have one text per entry"
        )
    return _nemo_line(
        cut.supervisions[0],
        cut.recording,
        cut.start,
        cut.duration,
        Path(out_dir or "."),
        out_dir is not None,
        cut.id,
    )


def write_nemo_manifest(lines: Iterable[Dict[str, Any]], path: PathLike) -> int:
    """Write dicts as JSON lines, atomically (a ``.tmp`` file renamed); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def entry_line(entry: ManifestEntry) -> Dict[str, Any]:
    """The manifest line of a usable entry as it was read: its keys, ``audio_filepath``
    resolved, ``offset`` only when non-zero, ``text`` only when given."""
    line: Dict[str, Any] = {"audio_filepath": entry.audio_path, "duration": entry.duration}
    if entry.offset:
        line["offset"] = entry.offset
    if entry.text:
        line["text"] = entry.text
    line.update(entry.extra)
    return line


def write_nemo_predictions(lines: Iterable[Tuple[Dict[str, Any], str]], path: PathLike) -> int:
    """NeMo's transcription output manifest: each ``(input line, transcript)`` written as the
    line with ``pred_text`` added, in the given order, atomically; returns the count. What
    ``decode.py --nemo-manifest`` and ``ASRModel.transcribe_manifest`` write."""
    return write_nemo_manifest(({**line, PRED_TEXT: text} for line, text in lines), path)


def cuts_to_nemo(cuts: Iterable[Cut], path: PathLike, relative: bool = True) -> int:
    """Write cuts as a NeMo manifest: one line per cut (``offset`` = the cut's start in its
    recording when non-zero, ``duration`` = the cut's, ``text`` its supervision's).

    Args:
      cuts: cuts with a single-file recording and exactly one supervision each.
      path: the manifest to write.
      relative: write audio paths under the manifest's folder relative to it (else absolute).
    Returns:
      the number of lines written.
    """
    path = Path(path)
    return write_nemo_manifest(
        (nemo_line(cut, path.parent if relative else None) for cut in cuts), path
    )


def manifests_to_nemo(
    recordings: RecordingSet,
    supervisions: SupervisionSet,
    path: PathLike,
    relative: bool = True,
) -> int:
    """Write recordings + supervisions as a NeMo manifest: one line per supervision
    (``offset`` = its start). Returns the number of lines written."""
    path = Path(path)
    return write_nemo_manifest(
        (
            _nemo_line(
                supervision,
                recordings[supervision.recording_id],
                supervision.start,
                supervision.duration,
                path.parent,
                relative,
                str(path),
            )
            for supervision in supervisions
        ),
        path,
    )
