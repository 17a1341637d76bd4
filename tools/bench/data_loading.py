#!/usr/bin/env python3
"""Data-loading throughput (cuts/s) of the training DataLoader: local cut manifest vs Lhotse Shar
vs NeMo tarred audio, with 0 and 2 DataLoader workers.

Usage (from egs/synth/ASR after ./prepare.sh: the cut manifests' paths are relative to it):
  python ../../../tools/bench/data_loading.py --cuts data/fbank/synth_cuts_train.jsonl.gz \\
      --work-dir /tmp/bench-data
  python ../../../tools/bench/data_loading.py --cuts data/fbank/synth_cuts_train.jsonl.gz \\
      --num-cuts 1000 --workers 0 2 --max-duration 100

The cuts (or the first ``--num-cuts``) are written once into ``--work-dir`` as Shar shards
(features, numpy) and as a NeMo tarred dataset (their audio files in tar shards). Each source is
then read for one full pass by AsrDataModule.train_dataloaders (bucketing sampler, training
defaults, no augmentation, drop_last off): stored fbank for the cut manifest and Shar, fbank
computed from the audio for the NeMo tars and, for comparison, for the local audio files.
Timed: the pass from the first batch request to the last batch (the sampler's duration-bin
estimate and worker start-up included). Prints a Markdown table: source, input, workers, cuts,
seconds, cuts/s.
"""

import argparse
import itertools
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from icefall_lite.data import AsrDataModule, load_cut_file  # noqa: E402
from icefall_lite.data.nemo_tarred import nemo_tarred_cuts, write_nemo_tarred  # noqa: E402
from icefall_lite.data.shar import load_shar_cuts, write_shar  # noqa: E402


def _data_module(workers: int, max_duration: float, on_the_fly: bool) -> AsrDataModule:
    parser = argparse.ArgumentParser()
    AsrDataModule.add_arguments(parser)
    args = parser.parse_args([])
    args.num_workers = workers
    args.max_duration = max_duration
    args.enable_musan = False
    args.drop_last = False  # count every cut (with few cuts per bucket, most batches are last)
    args.enable_spec_aug = False
    args.on_the_fly_feats = on_the_fly
    return AsrDataModule(args)


def _one_pass(cuts, workers: int, max_duration: float, on_the_fly: bool) -> tuple:
    dl = _data_module(workers, max_duration, on_the_fly).train_dataloaders(cuts, seed=0)
    dl.sampler.set_epoch(0)
    num_cuts = 0
    start = time.perf_counter()
    for batch in dl:
        num_cuts += batch["inputs"].shape[0]
    return num_cuts, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cuts", type=Path, required=True, help="Cut manifest with fbank.")
    parser.add_argument("--num-cuts", type=int, default=0, help="Cuts read (its first N; 0: all).")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/bench-data-loading"))
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--max-duration", type=float, default=30.0, help="synth's default.")
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (main process).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cuts = load_cut_file(args.cuts)
    subset = (cuts.subset(first=args.num_cuts) if args.num_cuts else cuts).to_eager()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    local = args.work_dir / "cuts.jsonl.gz"
    subset.to_file(local)
    shar_dir = write_shar(subset, args.work_dir / "shar", shard_size=args.shard_size)
    tarred = args.work_dir / "nemo_tarred"
    num_shards = max(1, len(subset) // args.shard_size)
    if not (tarred / "tarred_audio_manifest.json").is_file():
        write_nemo_tarred(subset, tarred, num_shards=num_shards)
    tars = [str(tarred / f"audio_{k}.tar") for k in range(num_shards)]

    sources = [
        ("local cuts", "fbank (stored)", lambda: load_cut_file(local), False),
        ("Lhotse Shar", "fbank (stored)", lambda: load_shar_cuts(shar_dir), False),
        ("local audio", "fbank on the fly", lambda: load_cut_file(local), True),
        (
            "NeMo tarred",
            "fbank on the fly",
            lambda: nemo_tarred_cuts(tarred / "tarred_audio_manifest.json", tars),
            True,
        ),
    ]
    rows = []
    for (name, what, make, on_the_fly), workers in itertools.product(sources, args.workers):
        if on_the_fly:
            make_cuts = make()
            if name == "local audio":
                make_cuts = make_cuts.drop_features()
        else:
            make_cuts = make()
        num, seconds = _one_pass(make_cuts, workers, args.max_duration, on_the_fly)
        rows.append((name, what, workers, num, seconds, num / seconds))
        print(f"{name} ({what}), {workers} workers: {num / seconds:.1f} cuts/s", file=sys.stderr)

    print(
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch thread(s), "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )
    print()
    print("| source | input | workers | cuts | seconds | cuts/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, what, workers, num, seconds, rate in rows:
        print(f"| {name} | {what} | {workers} | {num} | {seconds:.1f} | {rate:.1f} |")


if __name__ == "__main__":
    main()
