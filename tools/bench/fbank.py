#!/usr/bin/env python3
"""Fbank speed (x real time) of kaldifeat and lhotse's Fbank, measured in one run.

Usage:
  python tools/bench/fbank.py                                   # 5 minutes of generated audio
  python tools/bench/fbank.py --cuts egs/synth/ASR/data/fbank/synth_cuts_dev.jsonl.gz
  python tools/bench/fbank.py --threads 1 --repeats 3

Both extractors get the same audio already in memory (decoding is not timed), one utterance at a
time as prepare.sh's per-cut path does, plus kaldifeat batched (as the kaldifeat path of
prepare.sh runs it). Prints a Markdown table: backend, seconds of audio, best wall time, x real
time, and the largest absolute difference from lhotse's output.
"""

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from icefall_lite.data.features import kaldifeat_available, make_fbank_extractor  # noqa: E402

SAMPLE_RATE = 16000


def load_audio(args: argparse.Namespace) -> list:
    if args.cuts:
        from lhotse import CutSet

        cuts = CutSet.from_file(args.cuts)
        return [cut.load_audio()[0].astype(np.float32) for cut in cuts]
    rng = np.random.default_rng(0)
    audio, total = [], 0.0
    while total < args.seconds:
        seconds = float(rng.uniform(1.0, 8.0))
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        signal = 0.1 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t)
        audio.append((signal + 0.01 * rng.standard_normal(t.size)).astype(np.float32))
        total += seconds
    return audio


def best_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cuts", type=Path, help="Cut manifest to take audio from.")
    parser.add_argument("--seconds", type=float, default=300.0, help="Generated audio length.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs; the best is kept.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    audio = load_audio(args)
    seconds = sum(a.size for a in audio) / SAMPLE_RATE

    lhotse_fbank = make_fbank_extractor("lhotse")
    reference = [lhotse_fbank.extract(a, SAMPLE_RATE) for a in audio]
    rows = [
        (
            "lhotse Fbank (per utterance)",
            best_time(lambda: [lhotse_fbank.extract(a, SAMPLE_RATE) for a in audio], args.repeats),
            0.0,
        )
    ]
    if kaldifeat_available():
        # Through lhotse's wrapper, exactly as prepare.sh uses it (same scaling and options).
        kaldifeat_fbank = make_fbank_extractor("kaldifeat")
        outputs = [kaldifeat_fbank.extract(a, SAMPLE_RATE) for a in audio]
        diff = max(float(np.abs(o - r).max()) for o, r in zip(outputs, reference))
        rows.append(
            (
                "kaldifeat (per utterance)",
                best_time(
                    lambda: [kaldifeat_fbank.extract(a, SAMPLE_RATE) for a in audio], args.repeats
                ),
                diff,
            )
        )
        rows.append(
            (
                "kaldifeat (batched)",
                best_time(lambda: kaldifeat_fbank.extract_batch(audio, SAMPLE_RATE), args.repeats),
                diff,
            )
        )
    else:
        rows.append(("kaldifeat", float("nan"), float("nan")))
        print("kaldifeat is not installed: its row is empty", file=sys.stderr)

    print(
        f"{len(audio)} utterances, {seconds:.0f} s of audio, torch threads {args.threads}, "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}"
    )
    print("| backend | audio s | best wall s | x real time | max abs diff vs lhotse |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, wall, diff in rows:
        print(f"| {name} | {seconds:.0f} | {wall:.2f} | {seconds / wall:.0f} | {diff:.2g} |")


if __name__ == "__main__":
    main()
