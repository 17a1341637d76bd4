#!/usr/bin/env python3
"""Benchmarks of the Python API (``icefall_lite.ASRModel``) on a test set's audio: transcribe()
throughput, long-audio WER against per-utterance WER, and long-audio peak memory.

Usage (from egs/synth/ASR, with a package written by zipformer/export.py):

    python ../../../tools/bench/api_transcribe.py \\
        --model zipformer/exp/model-epoch-6-avg-2.icefall \\
        --cuts data/fbank/synth_cuts_test-human.jsonl.gz rtf wer rss

* ``rtf``: every cut's audio file through ``model.transcribe(files, batch_size=B)`` for B = 1
  and 8 (reading, fbank, encoder and search; the model loaded beforehand); RTF = seconds /
  audio seconds, on ``--num-threads`` threads.
* ``wer``: per-utterance WER (each file on its own) and the WER of the concatenation of all the
  files, in cut order, as one long file (reference: the transcripts joined), decoded with
  ``long_audio="streaming"`` (causal models) and ``"chunked"``; also how many of the long
  hypothesis' words lie within 1 s of a window join (chunked), to show the joins.
* ``rss``: the concatenation repeated to 1, 10 and 30 minutes, each transcribed in a fresh
  process (``python -m icefall_lite.transcribe``) under ``/usr/bin/time -v``; its maximum
  resident set size per mode.

Prints markdown tables.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from icefall_lite import ASRModel  # noqa: E402
from icefall_lite.scoring import word_error_rate  # noqa: E402


def _cuts(path: str, limit: int) -> List[Tuple[str, str, float]]:
    from lhotse import load_manifest_lazy

    out = []
    for cut in load_manifest_lazy(path):
        source = cut.recording.sources[0].source
        out.append((source, " ".join(s.text for s in cut.supervisions), cut.duration))
        if limit and len(out) >= limit:
            break
    return out


def _concatenate(cuts, path: Path, minutes: float = 0.0) -> float:
    """Write the cuts' audio one after the other (repeated up to ``minutes``); seconds."""
    waves = [sf.read(source, dtype="float32")[0] for source, _, _ in cuts]
    one = np.concatenate(waves)
    if minutes:
        repeats = int(np.ceil(minutes * 60 * 16000 / one.size))
        one = np.tile(one, repeats)[: int(minutes * 60 * 16000)]
    sf.write(path, one, 16000, subtype="PCM_16")
    return one.size / 16000


def bench_rtf(model: ASRModel, cuts) -> None:
    files = [c[0] for c in cuts]
    seconds = sum(c[2] for c in cuts)
    print("| batch size | files | audio s | wall s | RTF |\n| --- | --- | --- | --- | --- |")
    for batch_size in (1, 8):
        model.transcribe(files[:2], batch_size=batch_size)  # warm-up
        start = time.perf_counter()
        model.transcribe(files, batch_size=batch_size)
        wall = time.perf_counter() - start
        print(
            f"| {batch_size} | {len(files)} | {seconds:.1f} | {wall:.1f} | {wall / seconds:.4f} |"
        )


def bench_wer(args, model: ASRModel, cuts, work: Path) -> None:
    files = [c[0] for c in cuts]
    refs = [c[1].split() for c in cuts]
    start = time.perf_counter()
    hyps = model.transcribe(files, batch_size=8)
    per_wall = time.perf_counter() - start
    per = word_error_rate(list(zip(refs, [h.split() for h in hyps])))
    long_file = work / "long.wav"
    seconds = _concatenate(cuts, long_file)
    all_ref = [w for r in refs for w in r]
    print(
        f"concatenation: {len(files)} files, {seconds / 60:.1f} min, {len(all_ref)} words\n\n"
        "| decoding | WER % | hyp words | wall s |\n| --- | --- | --- | --- |"
    )
    print(f"| per utterance (batch 8) | {per:.2f} | {sum(len(h.split()) for h in hyps)} |"
          f" {per_wall:.1f} |")  # fmt: skip
    if model.causal:  # the package's streaming chunks above; full context as well
        start = time.perf_counter()
        full = model.transcribe(files, batch_size=8, full_context=True)
        wall = time.perf_counter() - start
        wer = word_error_rate(list(zip(refs, [h.split() for h in full])))
        words = sum(len(h.split()) for h in full)
        print(f"| per utterance (batch 8), full_context | {wer:.2f} | {words} | {wall:.1f} |")
    modes = ["streaming", "chunked"] if model.causal else ["chunked"]
    runs = [(m, False) for m in modes if m in args.modes]
    if model.causal and "chunked" in args.modes:
        runs.append(("chunked", True))
    for mode, full_context in runs:
        start = time.perf_counter()
        hyp = model.transcribe(
            str(long_file), long_audio=mode, return_hypotheses=True, full_context=full_context
        )[0]
        wall = time.perf_counter() - start
        words = hyp.text.split()
        wer = word_error_rate([(all_ref, words)])
        label = f"{mode}, full_context" if full_context else mode
        print(f"| long file, {label} | {wer:.2f} | {len(words)} | {wall:.1f} |")


def bench_rss(args, cuts, work: Path) -> None:
    modes = ["streaming", "chunked"] if ASRModel.restore_from(args.model).causal else ["chunked"]
    modes = [m for m in modes if m in args.modes]
    print("| minutes | mode | peak RSS MB | wall s | words |\n| --- | --- | --- | --- | --- |")
    for minutes in args.minutes:
        path = work / f"long-{minutes}.wav"
        _concatenate(cuts, path, minutes)
        for mode in modes:
            command = ["/usr/bin/time", "-v", sys.executable, "-m", "icefall_lite.transcribe",
                       "--model", args.model, "--long-audio", mode, "--num-threads",
                       str(args.num_threads), str(path)]  # fmt: skip
            env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
            start = time.perf_counter()
            proc = subprocess.run(command, capture_output=True, text=True, env=env)
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                raise SystemExit(f"transcribe failed:\n{proc.stderr[-2000:]}")
            rss_kb = next(
                int(line.split(":")[1])
                for line in proc.stderr.splitlines()
                if "Maximum resident set size" in line
            )
            words = len(proc.stdout.split("\t", 1)[1].split())
            print(f"| {minutes} | {mode} | {rss_kb / 1024:.0f} | {wall:.0f} | {words} |")
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="A model package (*.icefall).")
    parser.add_argument("--cuts", required=True, help="Cut manifest with recordings and texts.")
    parser.add_argument("--limit", type=int, default=0, help="Use the first N cuts (0: all).")
    parser.add_argument("--num-threads", type=int, default=1)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 30])
    parser.add_argument(
        "--modes", nargs="+", default=["streaming", "chunked"], help="Long-audio modes to run."
    )
    parser.add_argument("benchmarks", nargs="+", choices=("rtf", "wer", "rss"))
    args = parser.parse_args()
    torch.set_num_threads(args.num_threads)
    cuts = _cuts(args.cuts, args.limit)
    model = ASRModel.restore_from(args.model)
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "threads": args.num_threads, "cpu": platform.processor() or platform.machine(),
            "model": args.model}  # fmt: skip
    print(json.dumps(info))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.benchmarks:
            print(f"\n### {name}\n")
            if name == "rtf":
                bench_rtf(model, cuts)
            elif name == "wer":
                bench_wer(args, model, cuts, Path(tmp))
            else:
                bench_rss(args, cuts, Path(tmp))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
