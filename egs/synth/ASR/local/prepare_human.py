#!/usr/bin/env python3
"""The test-human split: Asterisk's recorded English prompts (real human speech).

Usage:
  ./local/prepare_human.py --audio-dir download/asterisk --manifest-dir data/manifests \\
      --text-out data/local/test-human.txt [--max-utterances 0]

Prompts whose transcript is not what was said are left out, with counts in the log:
bracketed notes ("[beep tone]", "(2 seconds of silence)"), numbers whose reading is ambiguous
(three or more digits, "28.8", "H.323"), and the silence files. The rest get a spoken-form
transcript (``"Press 1, then #."`` -> ``"PRESS ONE THEN POUND"``).
Writes ``synth_recordings_test-human.jsonl.gz``, ``synth_supervisions_test-human.jsonl.gz`` and
the transcripts, one per line (the text stage keeps them out of train/dev).
"""

import argparse
import logging
import re
import sys
from collections import Counter
from pathlib import Path

from lhotse import (
    Recording,
    RecordingSet,
    SupervisionSegment,
    SupervisionSet,
    validate_recordings_and_supervisions,
)
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from asterisk import PROMPT_DIR, decode_g722, read_transcripts, require, write_wav  # noqa: E402

from icefall_lite.data.transcripts import is_speakable, to_spoken_transcript  # noqa: E402


def skip_reason(key: str, text: str) -> str:
    """Why a prompt is not usable as a test utterance ('' when it is)."""
    if key.startswith("silence/"):
        return "silence"
    if re.search(r"[\[\]()<>=]", text):
        return "annotation"
    if re.search(r"\d{3,}|\d[.]\d|[A-Za-z][.]?\d", text):
        return "ambiguous number"
    if not is_speakable(to_spoken_transcript(text)):
        return "unspeakable"
    return ""


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--audio-dir", type=Path, default=Path("download/asterisk"))
    parser.add_argument("--manifest-dir", type=Path, default=Path("data/manifests"))
    parser.add_argument("--text-out", type=Path, default=Path("data/local/test-human.txt"))
    parser.add_argument(
        "--max-utterances",
        type=int,
        default=0,
        help="Keep only the first N usable prompts (0: all); for quick tests.",
    )
    return parser


def main() -> None:
    args = get_parser().parse_args()
    logging.basicConfig(
        format="%(asctime)s %(levelname)s [prepare_human] %(message)s", level="INFO"
    )
    require(PROMPT_DIR)
    transcripts = read_transcripts()
    skipped = Counter()
    examples = {}
    kept = []
    for key in sorted(transcripts):
        text = transcripts[key]
        reason = skip_reason(key, text)
        if not reason and not (PROMPT_DIR / f"{key}.g722").is_file():
            reason = "no audio file"
        if reason:
            skipped[reason] += 1
            examples.setdefault(reason, key)
            continue
        kept.append((key, to_spoken_transcript(text)))
    if args.max_utterances > 0:
        kept = kept[: args.max_utterances]
    for reason, count in skipped.most_common():
        logging.info(f"skipped {count} prompts: {reason} (e.g. {examples[reason]})")

    args.audio_dir.mkdir(parents=True, exist_ok=True)
    recordings, supervisions = [], []
    for key, transcript in tqdm(kept, desc="test-human", unit="prompt"):
        utt_id = "test-human-" + key.replace("/", "-")
        wav = args.audio_dir / f"{utt_id}.wav"
        if not wav.is_file():
            write_wav(decode_g722(PROMPT_DIR / f"{key}.g722"), wav)
        recording = Recording.from_file(wav, recording_id=utt_id)
        recordings.append(recording)
        supervisions.append(
            SupervisionSegment(
                id=utt_id,
                recording_id=utt_id,
                start=0.0,
                duration=recording.duration,
                channel=0,
                text=transcript,
                speaker="asterisk_allison",
                language="English",
                custom={"engine": "human", "voice": "allison"},
            )
        )
    recording_set = RecordingSet.from_recordings(recordings)
    supervision_set = SupervisionSet.from_segments(supervisions)
    validate_recordings_and_supervisions(recording_set, supervision_set)
    args.manifest_dir.mkdir(parents=True, exist_ok=True)
    for name, manifest in (("recordings", recording_set), ("supervisions", supervision_set)):
        final = args.manifest_dir / f"synth_{name}_test-human.jsonl.gz"
        tmp = final.with_name(".tmp." + final.name)
        manifest.to_file(tmp)
        tmp.replace(final)
    # All usable transcripts (not only the --max-utterances kept) stay out of training text.
    args.text_out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.text_out.with_name(".tmp." + args.text_out.name)
    all_usable = sorted(
        {to_spoken_transcript(t) for k, t in transcripts.items() if not skip_reason(k, t)}
    )
    tmp.write_text("\n".join(all_usable) + "\n", encoding="utf-8")
    tmp.replace(args.text_out)
    hours = sum(r.duration for r in recordings) / 3600
    logging.info(f"test-human: {len(recordings)} prompts, {hours:.2f} hours")


if __name__ == "__main__":
    main()
