#!/usr/bin/env python3
"""Synthesise the utterances of ``data/local/<split>.tsv`` and write lhotse manifests.

Usage:
  ./local/synthesize.py --split train --nj 2 --text-dir data/local \\
      --audio-dir download/synth --manifest-dir data/manifests

Audio: ``<audio-dir>/<split>/<utt_id>.wav`` (16 kHz mono 16-bit); files already there are kept,
so an interrupted run resumes. Manifests: ``<manifest-dir>/synth_recordings_<split>.jsonl.gz`` and
``synth_supervisions_<split>.jsonl.gz``, validated against each other.
"""

import argparse
import csv
import logging
import random
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from multiprocessing import Pool
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile
from lhotse import (
    Recording,
    RecordingSet,
    SupervisionSegment,
    SupervisionSet,
    validate_recordings_and_supervisions,
)
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from voices import (  # noqa: E402
    Voice,
    missing_tools,
    synthesize_espeak,
    synthesize_festival_batch,
    synthesize_flite,
    synthesize_kokoro_copies,
    synthesize_piper,
)

# Festival utterances per process: enough to hide its start-up time, small enough to balance jobs.
FESTIVAL_CHUNK = 25

Row = List[str]


NUM_COLUMNS = 9  # utt_id speaker engine voice rate pitch speak_text transcript effects
# Below this many samples, or this peak level, an output is not speech (the engine failed).
MIN_SAMPLES = 1600  # 0.1 s
MIN_PEAK = 100  # of 32767


def read_rows(path: Path) -> List[Row]:
    """The rows of a text-stage TSV; 8-column rows (no effects) get an empty effect chain."""
    if not path.is_file():
        sys.exit(f"synthesize.py: {path} not found (made by prepare.sh's text stage)")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\"))
    for line_number, row in enumerate(rows, start=1):
        if len(row) == NUM_COLUMNS - 1:
            row.append("")
        elif len(row) != NUM_COLUMNS:
            sys.exit(
                f"synthesize.py: {path} line {line_number}: expected {NUM_COLUMNS} tab-separated "
                f"columns, got {len(row)}; re-run prepare.sh's text stage"
            )
    return rows


def audio_problem(wav: Path) -> str:
    """Why ``wav`` is not a usable utterance ('' when it is): missing, too short, or silent."""
    if not wav.is_file():
        return "no audio written"
    try:
        samples, _ = soundfile.read(str(wav), dtype="int16")
    except (RuntimeError, OSError) as error:
        return f"unreadable ({error})"
    if len(samples) < MIN_SAMPLES:
        return f"too short ({len(samples)} samples)"
    if int(np.abs(samples.astype(np.int32)).max()) < MIN_PEAK:
        return "silent"
    return ""


def _synthesize_row(engine: str, row: Row, out_dir: Path) -> str:
    """One espeak-ng / flite utterance; returns '' or what went wrong (never raises)."""
    utt_id, _, _, voice_name, rate, pitch, speak, _, effects = row
    function = synthesize_espeak if engine == "espeak-ng" else synthesize_flite
    out_wav = out_dir / f"{utt_id}.wav"
    try:
        function(Voice(engine, voice_name), speak, float(rate), float(pitch), out_wav, effects)
    except (subprocess.CalledProcessError, OSError, ValueError) as error:
        out_wav.unlink(missing_ok=True)
        detail = getattr(error, "stderr", b"") or b""
        detail = detail.decode(errors="replace").strip().splitlines()[-1:] if detail else []
        return f"{engine} failed: {error}" + (f" ({detail[0]})" if detail else "")
    return ""


def piper_noise_scales(utt_id: str) -> Tuple[float, float]:
    """(noise_scale, noise_w) for an utterance: drawn from its id, so a re-run says it again the
    same way; around Piper's defaults (0.667, 0.8) for voice quality and timing variety."""
    rng = random.Random(utt_id)
    return rng.uniform(0.45, 0.9), rng.uniform(0.5, 1.0)


def _synthesize_piper_row(row: Row, out_dir: Path) -> str:
    utt_id, _, _, _, rate, _, speak, _, effects = row
    out_wav = out_dir / f"{utt_id}.wav"
    try:
        synthesize_piper(speak, float(rate), *piper_noise_scales(utt_id), out_wav, effects)
    except (subprocess.CalledProcessError, OSError, ValueError, RuntimeError) as error:
        out_wav.unlink(missing_ok=True)
        return f"piper failed: {error}"
    return ""


def synthesize_work_item(item: Tuple[str, List[Row], str]) -> List[Tuple[str, str]]:
    """Synthesise one work item (one row, or a chunk of festival rows).

    Returns ``(utt_id, problem)`` for each row that failed; an engine error is caught and
    reported here, so one bad utterance never stops the others.
    """
    engine, rows, out_dir = item
    out_dir = Path(out_dir)
    if engine == "kokoro":
        # One sentence, several copies (see make_text.py's --kokoro-copies).
        outputs = [(out_dir / f"{row[0]}.wav", row[8]) for row in rows]
        try:
            synthesize_kokoro_copies(
                Voice("kokoro", rows[0][3]), rows[0][6], float(rows[0][4]), outputs
            )
        except (subprocess.CalledProcessError, OSError, ValueError, RuntimeError) as error:
            return [(row[0], f"kokoro failed: {error}") for row in rows]
        return []
    if engine == "festival":
        voice = Voice("festival", rows[0][3])
        try:
            with tempfile.TemporaryDirectory(dir=out_dir) as work_dir:
                synthesize_festival_batch(
                    voice,
                    [(row[6], float(row[4]), out_dir / f"{row[0]}.wav") for row in rows],
                    Path(work_dir),
                )
        except (subprocess.CalledProcessError, OSError) as error:
            return [(row[0], f"festival failed: {error}") for row in rows]
        return []
    failures = []
    for row in rows:
        if engine == "piper":
            problem = _synthesize_piper_row(row, out_dir)
        else:
            problem = _synthesize_row(engine, row, out_dir)
        if problem:
            failures.append((row[0], problem))
    return failures


def check_outputs(rows: List[Row], out_dir: Path, failures: Dict[str, str]) -> List[Row]:
    """The rows whose audio is usable; the others are added to ``failures`` (and their files
    removed, so a re-run tries them again)."""
    usable = []
    for row in rows:
        wav = out_dir / f"{row[0]}.wav"
        problem = failures.get(row[0]) or audio_problem(wav)
        if problem:
            failures[row[0]] = problem
            wav.unlink(missing_ok=True)
        else:
            usable.append(row)
    return usable


def make_work_items(rows: List[Row], out_dir: Path) -> List[Tuple[str, List[Row], str]]:
    todo = [row for row in rows if not (out_dir / f"{row[0]}.wav").is_file()]
    items = []
    festival_by_voice = defaultdict(list)
    kokoro_by_sentence = defaultdict(list)
    for row in todo:
        if row[2] == "festival":
            festival_by_voice[row[3]].append(row)
        elif row[2] == "kokoro":
            kokoro_by_sentence[(row[3], row[4], row[6])].append(row)
        else:
            items.append((row[2], [row], str(out_dir)))
    for voice_rows in festival_by_voice.values():
        for start in range(0, len(voice_rows), FESTIVAL_CHUNK):
            items.append(("festival", voice_rows[start : start + FESTIVAL_CHUNK], str(out_dir)))
    items += [("kokoro", rows, str(out_dir)) for rows in kokoro_by_sentence.values()]
    # Slow items first so that the last minutes are not one job finishing a long tail.
    items.sort(key=lambda item: item[0] not in ("festival", "kokoro"))
    return items


def write_manifests(rows: List[Row], out_dir: Path, manifest_dir: Path, split: str) -> float:
    recordings = []
    supervisions = []
    for utt_id, speaker, engine, voice_name, _, _, _, transcript, _ in rows:
        recording = Recording.from_file(out_dir / f"{utt_id}.wav", recording_id=utt_id)
        recordings.append(recording)
        supervisions.append(
            SupervisionSegment(
                id=utt_id,
                recording_id=utt_id,
                start=0.0,
                duration=recording.duration,
                channel=0,
                text=transcript,
                speaker=speaker,
                language="English",
                custom={"engine": engine, "voice": voice_name},
            )
        )
    recording_set = RecordingSet.from_recordings(recordings)
    supervision_set = SupervisionSet.from_segments(supervisions)
    validate_recordings_and_supervisions(recording_set, supervision_set)
    manifest_dir.mkdir(parents=True, exist_ok=True)
    for name, manifest in (("recordings", recording_set), ("supervisions", supervision_set)):
        final = manifest_dir / f"synth_{name}_{split}.jsonl.gz"
        tmp = final.with_name(".tmp." + final.name)
        manifest.to_file(tmp)
        tmp.replace(final)
    return sum(r.duration for r in recordings)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", required=True, help="train, dev or test-synth.")
    parser.add_argument("--nj", type=int, default=2, help="Parallel synthesis processes.")
    parser.add_argument("--text-dir", type=Path, default=Path("data/local"))
    parser.add_argument("--audio-dir", type=Path, default=Path("download/synth"))
    parser.add_argument("--manifest-dir", type=Path, default=Path("data/manifests"))
    return parser


def main() -> None:
    args = get_parser().parse_args()
    logging.basicConfig(format="%(asctime)s %(levelname)s [synthesize] %(message)s", level="INFO")
    missing = missing_tools()
    if missing:
        sys.exit("synthesize.py: missing tools; install them with: " + "; ".join(missing))
    rows = read_rows(args.text_dir / f"{args.split}.tsv")
    out_dir = args.audio_dir / args.split
    out_dir.mkdir(parents=True, exist_ok=True)
    items = make_work_items(rows, out_dir)
    logging.info(f"{args.split}: {len(rows)} utterances, {sum(len(i[1]) for i in items)} to make")
    failures: Dict[str, str] = {}
    with (
        Pool(max(1, args.nj)) as pool,
        tqdm(
            total=sum(len(i[1]) for i in items), desc=f"synth {args.split}", unit="utt"
        ) as progress,
    ):
        for item, item_failures in zip(items, pool.imap(synthesize_work_item, items)):
            failures.update(item_failures)
            progress.update(len(item[1]))
    usable = check_outputs(rows, out_dir, failures)
    if failures:
        examples = "; ".join(f"{utt}: {why}" for utt, why in sorted(failures.items())[:3])
        by_voice = Counter(row[3] for row in rows if row[0] in failures)
        logging.warning(
            f"{args.split}: {len(failures)} of {len(rows)} utterances could not be synthesised "
            f"and are left out (by voice: {dict(by_voice.most_common(5))}), e.g. {examples}"
        )
    if not usable:
        sys.exit(f"synthesize.py: {args.split}: no utterance could be synthesised (see above)")
    seconds = write_manifests(usable, out_dir, args.manifest_dir, args.split)
    logging.info(f"{args.split}: {len(usable)} utterances, {seconds / 3600:.2f} hours")


if __name__ == "__main__":
    main()
