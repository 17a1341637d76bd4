#!/usr/bin/env python3
"""Iterative pseudo-labelling on the synth corpus at equal training time (issue #15).

Usage (from egs/synth/ASR, after ./prepare.sh):

  ../../../tools/bench/ipl_synth.py --cpu-minutes 12 --warmup-epochs 6

1. Splits data/fbank/synth_cuts_train.jsonl.gz: --labelled-fraction of the cuts (drawn with
   --seed) stay labelled (data-ipl/fbank/synth_cuts_train.jsonl.gz), the rest become unlabeled
   (data-ipl/fbank/synth_cuts_unlabeled.jsonl.gz, supervision text emptied); their transcripts
   go to data-ipl/hidden-transcripts.txt, read only for scoring.
2. Trains, one thread and no loader workers each, until the training process has used
   --cpu-minutes of CPU time (then it is killed; CPU time, not wall time, so that other load
   on the machine does not change the budget):
   A supervised on the labelled fraction; B IPL: --warmup-epochs supervised epochs (the same
   as A's), then labelled + pseudo-labelled cuts (--ipl-n-epochs K, CTC greedy labels, the
   labelling passes inside the budget); C supervised on all of train. The three run at once.
3. Decodes each run's last checkpoint (--iter N --avg 4 --use-averaged-model 1, greedy search)
   on dev, test-synth and test-human, scores every pseudo-label generation B wrote against the
   hidden transcripts, and prints the markdown tables.
"""

import argparse
import gzip
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from icefall_lite.scoring import word_error_rate  # noqa: E402

TEST_SETS = ("dev", "test-synth", "test-human")
TICKS = os.sysconf("SC_CLK_TCK")
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)\.pt$")


def split_train(out: Path, fraction: float, seed: int) -> Dict[str, str]:
    """Write the labelled/unlabeled split under ``out``; returns the hidden transcripts."""
    from lhotse import CutSet
    from lhotse.utils import fastcopy

    fbank = out / "fbank"
    hidden_file = out / "hidden-transcripts.txt"
    if hidden_file.is_file():
        rows = [line.split("\t", 1) for line in hidden_file.read_text().splitlines()]
        return {cut_id: text for cut_id, text in rows}
    fbank.mkdir(parents=True, exist_ok=True)
    cuts = CutSet.from_file("data/fbank/synth_cuts_train.jsonl.gz").to_eager()
    ids = sorted(cut.id for cut in cuts)
    labelled = set(random.Random(seed).sample(ids, int(round(fraction * len(ids)))))
    cuts.filter(lambda c: c.id in labelled).to_file(fbank / "synth_cuts_train.jsonl.gz")
    unlabeled = cuts.filter(lambda c: c.id not in labelled)
    hidden = {cut.id: cut.supervisions[0].text for cut in unlabeled}
    unlabeled.map(
        lambda c: fastcopy(c, supervisions=[fastcopy(s, text="") for s in c.supervisions])
    ).to_file(fbank / "synth_cuts_unlabeled.jsonl.gz")
    # Test sets and the noise cuts the recipe mixes in (--enable-musan) come from data/fbank.
    for name in (*TEST_SETS, "noise"):
        link = fbank / f"synth_cuts_{name}.jsonl.gz"
        if not link.exists() and not link.is_symlink():
            link.symlink_to(Path("../../data/fbank") / link.name)
    with open(hidden_file, "w") as f:
        for cut_id in sorted(hidden):
            f.write(f"{cut_id}\t{hidden[cut_id]}\n")
    print(f"split: {len(labelled)} labelled, {len(hidden)} unlabeled cuts", flush=True)
    return hidden


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime (fields 14-17 of proc(5); index 11-14 after the name)
    return sum(int(v) for v in fields[11:15]) / TICKS


def _cache_generation(path: Path) -> Optional[int]:
    try:
        with gzip.open(path, "rt") as f:
            return int(json.loads(f.readline())["generation"])
    except (OSError, EOFError, ValueError, KeyError):
        return None


def run_budgeted(cmd: List[str], exp_dir: Path, budget: float) -> Dict[str, float]:
    """Run ``cmd`` until it exits or has used ``budget`` CPU seconds. Returns file name ->
    CPU seconds at which each checkpoint (and IPL cache generation snapshot) appeared, and
    ``"end"``."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    log = open(exp_dir / "bench-stderr.txt", "w")
    process = subprocess.Popen(["nice", "-n", "19", *cmd], stdout=log, stderr=log, env=env)
    seen: Dict[str, float] = {}
    cache = exp_dir / "ipl-cache.jsonl.gz"
    start = time.time()
    cpu = 0.0
    while process.poll() is None:
        try:
            cpu = _cpu_seconds(process.pid) - 0.0
        except (FileNotFoundError, ProcessLookupError):
            break
        for path in exp_dir.glob("*.pt"):
            seen.setdefault(path.name, cpu)
        generation = _cache_generation(cache) if cache.is_file() else None
        if generation is not None and f"ipl-gen-{generation}" not in seen:
            shutil.copyfile(cache, exp_dir / f"ipl-gen-{generation}.jsonl.gz")
            seen[f"ipl-gen-{generation}"] = cpu
        if cpu >= budget:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(1.0)
    process.wait()
    seen["end"] = cpu
    seen["wall"] = time.time() - start
    (exp_dir / "bench-cpu-times.json").write_text(json.dumps(seen, indent=1))
    return seen


def last_checkpoint(exp_dir: Path) -> int:
    return max(int(m.group(1)) for p in exp_dir.iterdir() if (m := _CHECKPOINT_RE.match(p.name)))


def decode(exp_dir: Path, iteration: int) -> Dict[str, float]:
    """Greedy-search WER (%) of --iter iteration --avg 4 --use-averaged-model 1."""
    cmd = [
        "nice", "-n", "19", sys.executable, "zipformer/decode.py",
        "--exp-dir", str(exp_dir), "--iter", str(iteration), "--avg", "4",
        "--use-averaged-model", "1", "--decoding-method", "greedy_search",
        "--chunk-size", "-1", "--left-context-frames", "-1",
        "--max-duration", "100", "--num-threads", "1", "--num-workers", "0",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    wers = {}
    for name in TEST_SETS:
        summary = next(
            (exp_dir / "greedy_search").glob(f"wer-summary-{name}-iter-{iteration}_avg-4_*")
        )
        wers[name] = float(summary.read_text().splitlines()[1].split()[-1])
    return wers


def pseudo_label_wer(cache_file: Path, hidden: Dict[str, str]) -> Tuple[float, int, float]:
    """(WER % over the labelled cuts, labels, WER % counting unlabelled cuts as deleted)."""
    with gzip.open(cache_file, "rt") as f:
        rows = [json.loads(line) for line in f][1:]
    labels = {row["id"]: row["text"] for row in rows}
    pairs = [(hidden[i].split(), labels[i].split()) for i in labels]
    every = [(hidden[i].split(), labels.get(i, "").split()) for i in hidden]
    return word_error_rate(pairs), len(labels), word_error_rate(every)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cpu-minutes", type=float, default=12.0)
    parser.add_argument("--warmup-epochs", type=int, default=6)
    parser.add_argument("--labelled-fraction", type=float, default=0.2)
    parser.add_argument("--p-cache", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("zipformer/exp-ipl"))
    parser.add_argument("--runs", default="A,B,C", help="Which runs to (re)do.")
    args = parser.parse_args()
    budget = args.cpu_minutes * 60
    hidden = split_train(Path("data-ipl"), args.labelled_fraction, args.seed)
    common = [
        sys.executable, "zipformer/train.py", "--num-epochs", "1000", "--num-threads", "1",
        "--num-workers", "0", "--save-every-n", "50", "--keep-last-k", "1000",
        "--tensorboard", "0",
    ]  # fmt: skip
    runs = args.runs.split(",")
    a_dir, b_dir, c_dir = (args.out / name for name in ("A-sup20", "B-ipl", "C-sup100"))
    k = args.warmup_epochs
    ipl = [
        "--ipl-n-epochs", str(k),
        "--ipl-unlabeled-cuts", "data-ipl/fbank/synth_cuts_unlabeled.jsonl.gz",
        "--ipl-p-cache", str(args.p_cache), "--ipl-decoding-method", "ctc_greedy_search",
        "--ipl-batch-duration", "50",
    ]  # fmt: skip
    commands = {
        "A": (common + ["--exp-dir", str(a_dir), "--manifest-dir", "data-ipl/fbank"], a_dir),
        "B": (common + ["--exp-dir", str(b_dir), "--manifest-dir", "data-ipl/fbank"] + ipl, b_dir),
        "C": (common + ["--exp-dir", str(c_dir), "--manifest-dir", "data/fbank"], c_dir),
    }
    # The three runs at once (one thread each): on a shared machine the wall time is shorter,
    # and each is stopped by its own CPU time.
    threads = [
        threading.Thread(target=run_budgeted, args=(*commands[name], budget))
        for name in runs
        if name in commands
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    b_times = json.loads((b_dir / "bench-cpu-times.json").read_text())
    runs_info = (
        ("A supervised, 20 % labelled", a_dir),
        (f"B IPL ({k} supervised epochs, then + pseudo-labels)", b_dir),
        ("C supervised, 100 % labelled (topline)", c_dir),
    )
    iterations = {exp_dir: last_checkpoint(exp_dir) for _, exp_dir in runs_info}
    wers: Dict[Path, Dict[str, float]] = {}

    def decode_into(exp_dir: Path) -> None:
        wers[exp_dir] = decode(exp_dir, iterations[exp_dir])

    threads = [threading.Thread(target=decode_into, args=(d,)) for _, d in runs_info]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = []
    for name, exp_dir in runs_info:
        times = json.loads((exp_dir / "bench-cpu-times.json").read_text())
        iteration = iterations[exp_dir]
        cpu = times.get(f"checkpoint-{iteration}.pt", times["end"])
        rows.append((name, iteration, cpu / 60, times["wall"] / 60, wers[exp_dir]))
    print("\n| run | last step | CPU min at that step | wall min | dev | test-synth | test-human |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, iteration, minutes, wall, wers in rows:
        cells = " | ".join(f"{wers[t]:.2f}" for t in TEST_SETS)
        print(f"| {name} | {iteration} | {minutes:.1f} | {wall:.1f} | {cells} |")
    print("\n| generation | CPU minutes when written | labels | WER of the labels |", end="")
    print(" WER, unlabelled as deleted |")
    print("| --- | --- | --- | --- | --- |")
    for snapshot in sorted(
        b_dir.glob("ipl-gen-*.jsonl.gz"), key=lambda p: int(p.name.split("-")[2].split(".")[0])
    ):
        generation = snapshot.name.split("-")[2].split(".")[0]
        wer, count, wer_all = pseudo_label_wer(snapshot, hidden)
        minutes = b_times[f"ipl-gen-{generation}"] / 60
        cells = f"{count} of {len(hidden)} | {wer:.2f} | {wer_all:.2f}"
        print(f"| {generation} | {minutes:.1f} | {cells} |")


if __name__ == "__main__":
    main()
