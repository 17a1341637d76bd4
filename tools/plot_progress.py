#!/usr/bin/env python3
"""Draw a training run's progress as one PNG: WER against wall time, losses against steps.

Usage (from the repository root):

  .venv/bin/python tools/plot_progress.py \\
      --run A-baseline=egs/synth/ASR/zipformer/exp-sweep/A-baseline \\
      --run B-ref1=egs/synth/ASR/zipformer/exp-sweep/B-ref1 \\
      --methods greedy_search,ctc_greedy_search --test-sets dev,test-human \\
      --title "synth zipformer sweep" --out progress.png

  # one run; its label is the folder name
  .venv/bin/python tools/plot_progress.py --run egs/synth/ASR/zipformer/exp --out exp.png

Each ``--run`` folder is a training ``--exp-dir``:

- ``wer-vs-time.tsv`` (written by tools/wer_curve.py) gives the left panel: WER (%) against
  training wall-clock minutes, one line per (run, test set, decoding method); colour per run,
  line style per test set, marker per method. The y axis runs from 0 to min(100, max + 5);
  WERs above 100 % are drawn at 100 % (the panel title says so when that happens).
- ``log/log-train-*`` (all of them, by name, so a resumed run continues its curve) gives the
  right panel: ``tot_loss`` (solid) and the per-step ``loss`` (faint) against optimizer steps,
  and the validation loss as points. A validation line carries no step, so its point is drawn
  at the last logged step before it (at most ``log_interval`` steps early).

A run without a tsv still gets its loss curve (and a note in the left panel); if no run has any
data the command exits 1 with a one-line error. The PNG is written atomically (a temporary file
in the same folder, then a rename), with matplotlib's non-interactive Agg backend.
"""

import argparse
import csv
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from icefall_lite.utils import atomic_open  # noqa: E402

PROG = "plot_progress.py"
WER_COLUMNS = [
    "checkpoint",
    "step",
    "epoch",
    "train_minutes",
    "test_set",
    "method",
    "num_utts",
    "wer",
]
WER_CLIP = 100.0

# "Epoch 1, step 340, epoch 1/100 (73%), elapsed 8.7 min, ETA 11.1 min,
#  loss[1.774 over 668 frames], tot_loss[1.574], lr: 4.092e-02" (training.py, _after_step)
_STEP_RE = re.compile(
    r"Epoch (?P<epoch>\d+), step (?P<step>\d+), .*?"
    r"loss\[(?P<loss>\S+) over \d+ frames\], tot_loss\[(?P<tot_loss>[^\]]+)\]"
)
_ELAPSED_RE = re.compile(r"elapsed (?P<minutes>[0-9.]+) min")
# "Epoch 1, validation: loss=1.234, simple_loss=..., over 5678.00 frames." (_validate_and_log)
_VALID_RE = re.compile(r"Epoch (?P<epoch>\d+), validation: (?P<items>.*)$")


@dataclass
class LossPoint:
    """One ``Epoch k, step N`` log line: losses per frame; ``minutes`` of training wall time."""

    step: int
    epoch: int
    loss: float
    tot_loss: float
    minutes: Optional[float] = None


@dataclass
class ValidPoint:
    """One ``Epoch k, validation:`` line; ``step``: the last logged step before it (or None)."""

    epoch: int
    step: Optional[int]
    loss: float


@dataclass
class TrainLog:
    steps: List[LossPoint] = field(default_factory=list)
    valid: List[ValidPoint] = field(default_factory=list)


@dataclass
class WerRow:
    """One row of wer-vs-time.tsv (WER in %, training wall time in minutes)."""

    checkpoint: str
    step: int
    epoch: str
    train_minutes: float
    test_set: str
    method: str
    num_utts: int
    wer: float


@dataclass
class Run:
    label: str
    exp_dir: Path
    wer_rows: List[WerRow] = field(default_factory=list)
    log: TrainLog = field(default_factory=TrainLog)
    wer_note: Optional[str] = None  # why the WER panel has no line for this run
    log_note: Optional[str] = None  # why the loss panel has no curve for this run

    @property
    def has_data(self) -> bool:
        return bool(self.wer_rows or self.log.steps or self.log.valid)


# --------------------------------------------------------------------------------------------
# Parsing (no matplotlib needed)


def parse_train_log(lines: Iterable[str], log: Optional[TrainLog] = None) -> TrainLog:
    """Loss and validation points of a training log's lines, appended to ``log`` (or a new one).

    A step logged again (a run resumed from a checkpoint before its last logged step) replaces
    the earlier point; points stay sorted by step. Lines that match neither format are ignored.
    """
    log = log if log is not None else TrainLog()
    by_step = {p.step: p for p in log.steps}
    last_step = log.steps[-1].step if log.steps else None
    for line in lines:
        m = _STEP_RE.search(line)
        if m:
            elapsed = _ELAPSED_RE.search(line)
            point = LossPoint(
                step=int(m["step"]),
                epoch=int(m["epoch"]),
                loss=float(m["loss"]),
                tot_loss=float(m["tot_loss"]),
                minutes=float(elapsed["minutes"]) if elapsed else None,
            )
            by_step[point.step] = point
            last_step = point.step
            continue
        m = _VALID_RE.search(line.rstrip())
        if m:
            for item in m["items"].split(", "):
                if item.startswith("loss="):
                    value = float(item[len("loss=") :].rstrip("."))
                    log.valid.append(ValidPoint(int(m["epoch"]), last_step, value))
                    break
    log.steps = [by_step[s] for s in sorted(by_step)]
    return log


def read_train_logs(exp_dir: Path) -> TrainLog:
    """Every ``<exp_dir>/log/log-train-*`` in name (= start time) order, as one TrainLog."""
    log = TrainLog()
    for path in sorted((exp_dir / "log").glob("log-train-*")):
        with open(path, encoding="utf-8", errors="replace") as f:
            parse_train_log(f, log)
    return log


def read_wer_tsv(path: Path) -> List[WerRow]:
    """Rows of a wer-vs-time.tsv; ValueError naming the file for missing columns or bad numbers."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = [c for c in WER_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = []
        for line_no, r in enumerate(reader, start=2):
            try:
                rows.append(
                    WerRow(
                        checkpoint=r["checkpoint"],
                        step=int(r["step"]),
                        epoch=r["epoch"],
                        train_minutes=float(r["train_minutes"]),
                        test_set=r["test_set"],
                        method=r["method"],
                        num_utts=int(r["num_utts"]),
                        wer=float(r["wer"]),
                    )
                )
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}, line {line_no}: {e}") from None
    return rows


def wer_series(
    rows: Sequence[WerRow],
    test_sets: Optional[Sequence[str]] = None,
    methods: Optional[Sequence[str]] = None,
) -> Dict[Tuple[str, str], List[Tuple[float, float]]]:
    """``{(test_set, method): [(train_minutes, wer %), ...]}`` sorted by time.

    ``test_sets`` / ``methods`` (None: all) select and order the keys. If a checkpoint was
    decoded on several subset sizes, the largest one is kept.
    """
    best: Dict[Tuple[str, str, str, int], WerRow] = {}
    for r in rows:
        if test_sets is not None and r.test_set not in test_sets:
            continue
        if methods is not None and r.method not in methods:
            continue
        key = (r.test_set, r.method, r.checkpoint, r.step)
        if key not in best or r.num_utts > best[key].num_utts:
            best[key] = r
    series: Dict[Tuple[str, str], List[Tuple[float, float]]] = {}
    for r in best.values():
        series.setdefault((r.test_set, r.method), []).append((r.train_minutes, r.wer))

    def order(key: Tuple[str, str]) -> Tuple[int, int, str, str]:
        t = test_sets.index(key[0]) if test_sets is not None else 0
        m = methods.index(key[1]) if methods is not None else 0
        return (t, m, key[0], key[1])

    return {k: sorted(series[k]) for k in sorted(series, key=order)}


def load_run(
    label: str,
    exp_dir: Path,
    test_sets: Optional[Sequence[str]] = None,
    methods: Optional[Sequence[str]] = None,
) -> Run:
    """A run's WER rows (those selected) and training log, with notes on what is missing."""
    run = Run(label, exp_dir)
    tsv = exp_dir / "wer-vs-time.tsv"
    if tsv.is_file():
        rows = read_wer_tsv(tsv)
        run.wer_rows = [
            r
            for r in rows
            if (test_sets is None or r.test_set in test_sets)
            and (methods is None or r.method in methods)
        ]
        if rows and not run.wer_rows:
            have = sorted({f"{r.test_set}/{r.method}" for r in rows})
            run.wer_note = f"{label}: no selected rows in {tsv.name} (has {', '.join(have)})"
        elif not rows:
            run.wer_note = f"{label}: {tsv.name} has no rows yet"
    else:
        run.wer_note = f"{label}: no wer-vs-time.tsv"
    run.log = read_train_logs(exp_dir)
    if not run.log.steps:
        run.log_note = f"{label}: no loss lines in log/log-train-*"
    return run


def wer_axis_top(wers: Sequence[float]) -> Tuple[float, bool]:
    """Top of the WER axis, min(100, max + 5), and whether some WER lies above it (clipped)."""
    finite = [w for w in wers if math.isfinite(w)]
    top = min(WER_CLIP, max(finite) + 5) if finite else WER_CLIP
    return top, any(w > top for w in finite)


# --------------------------------------------------------------------------------------------
# Plotting

_LINE_STYLES = ["-", "--", ":", "-."]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _notes(ax: "matplotlib.axes.Axes", notes: List[str]) -> None:  # noqa: F821
    """What a panel lacks, in small grey text at its lower left."""
    if notes:
        ax.text(
            0.02,
            0.02,
            "\n".join(notes),
            transform=ax.transAxes,
            fontsize="small",
            color="dimgrey",
            va="bottom",
        )


def plot_progress(runs: Sequence[Run], out: Path, title: Optional[str] = None) -> None:
    """Draw the two panels for ``runs`` and write them to ``out`` (PNG, atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    test_sets: List[str] = []
    methods: List[str] = []
    for run in runs:
        for r in run.wer_rows:
            if r.test_set not in test_sets:
                test_sets.append(r.test_set)
            if r.method not in methods:
                methods.append(r.method)

    fig, (ax_wer, ax_loss) = plt.subplots(1, 2, figsize=(14, 5.5))

    # WER against wall time
    top, clipped = wer_axis_top([r.wer for run in runs for r in run.wer_rows])
    for i, run in enumerate(runs):
        colour = colours[i % len(colours)]
        for (test_set, method), points in wer_series(run.wer_rows, test_sets, methods).items():
            ax_wer.plot(
                [m for m, _ in points],
                [min(w, top) for _, w in points],
                color=colour,
                linestyle=_LINE_STYLES[test_sets.index(test_set) % len(_LINE_STYLES)],
                marker=_MARKERS[methods.index(method) % len(_MARKERS)],
                markersize=5,
            )
    ax_wer.set_ylim(0, top)
    ax_wer.set_xlim(left=0)
    ax_wer.set_xlabel("training wall time (minutes)")
    ax_wer.set_ylabel("WER (%)")
    wer_title = "WER against training time"
    if clipped:
        wer_title += f" (WER > {top:g} % drawn at {top:g} %)"
    ax_wer.set_title(wer_title)
    ax_wer.grid(True, alpha=0.3)
    handles = [
        Line2D([], [], color=colours[i % len(colours)], label=run.label)
        for i, run in enumerate(runs)
        if run.wer_rows
    ]
    handles += [
        Line2D([], [], color="grey", linestyle=_LINE_STYLES[i % len(_LINE_STYLES)], label=t)
        for i, t in enumerate(test_sets)
    ]
    handles += [
        Line2D([], [], color="grey", linestyle="", marker=_MARKERS[i % len(_MARKERS)], label=m)
        for i, m in enumerate(methods)
    ]
    if handles:
        ax_wer.legend(handles=handles, fontsize="small", loc="best")
    _notes(ax_wer, [run.wer_note for run in runs if run.wer_note])

    # Losses against steps
    for i, run in enumerate(runs):
        colour = colours[i % len(colours)]
        steps = [p.step for p in run.log.steps]
        if steps:
            ax_loss.plot(steps, [p.loss for p in run.log.steps], color=colour, alpha=0.25, lw=0.8)
            ax_loss.plot(
                steps, [p.tot_loss for p in run.log.steps], color=colour, label=f"{run.label}"
            )
        valid = [v for v in run.log.valid if v.step is not None]
        if valid:
            ax_loss.plot(
                [v.step for v in valid],
                [v.loss for v in valid],
                color=colour,
                linestyle="",
                marker="o",
                markeredgecolor="black",
                label=f"{run.label} valid",
            )
    ax_loss.set_xlabel("optimizer step")
    ax_loss.set_ylabel("loss per frame")
    ax_loss.set_title("training loss: tot_loss (solid), per-step loss (faint), valid (points)")
    ax_loss.grid(True, alpha=0.3)
    if ax_loss.get_legend_handles_labels()[0]:
        ax_loss.legend(fontsize="small", loc="upper right")
    _notes(ax_loss, [run.log_note for run in runs if run.log_note])

    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_open(out, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# Command line


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--run",
        action="append",
        required=True,
        metavar="LABEL=EXP_DIR",
        help="A training folder (holding wer-vs-time.tsv and log/) and its legend label; "
        "repeat for several runs. Without 'LABEL=' the folder name is the label.",
    )
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write.")
    parser.add_argument(
        "--methods", default=None, help="Comma-separated decoding methods to plot; default: all."
    )
    parser.add_argument(
        "--test-sets", default=None, help="Comma-separated test sets to plot; default: all."
    )
    parser.add_argument("--title", default=None, help="Figure title.")
    return parser


def parse_run(spec: str) -> Tuple[str, Path]:
    """``LABEL=EXP_DIR`` (or ``EXP_DIR``: the label is its folder name) -> (label, path)."""
    label, sep, path = spec.partition("=")
    if not sep:
        label, path = Path(spec).name, spec
    if not label or not path:
        raise ValueError(f"--run '{spec}': expected LABEL=EXP_DIR")
    return label, Path(path)


def _split(value: Optional[str]) -> Optional[List[str]]:
    return [v for v in value.split(",") if v] if value else None


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = get_parser().parse_args(argv)
    test_sets, methods = _split(args.test_sets), _split(args.methods)
    runs: List[Run] = []
    for spec in args.run:
        try:
            label, exp_dir = parse_run(spec)
            if not exp_dir.is_dir():
                raise ValueError(f"--run {label}={exp_dir}: not a folder")
            if any(r.label == label for r in runs):
                raise ValueError(f"--run: label '{label}' given twice")
            runs.append(load_run(label, exp_dir, test_sets, methods))
        except (OSError, ValueError) as e:
            sys.exit(f"{PROG}: {e}")
    if not any(run.has_data for run in runs):
        where = ", ".join(f"{r.label}={r.exp_dir}" for r in runs)
        sys.exit(
            f"{PROG}: no data to plot: no wer-vs-time.tsv rows or log-train-* loss lines in {where}"
        )
    for note in [n for run in runs for n in (run.wer_note, run.log_note) if n]:
        print(f"{PROG}: note: {note}", file=sys.stderr)
    plot_progress(runs, args.out, args.title)
    print(f"{PROG}: wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
