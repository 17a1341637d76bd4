"""tools/plot_progress.py: parsing of training logs and wer-vs-time.tsv, the PNG it writes, and
the one-line error when no run has data."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "tools" / "plot_progress.py"

_spec = importlib.util.spec_from_file_location("plot_progress", SCRIPT)
pp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pp)

PREFIX = "2026-12-01 15:51:04,879 INFO [training.py:846] "
LOG_1 = "".join(
    line + "\n"
    for line in [
        "2026-12-01 15:50:42,001 INFO [training.py:1007] Training started",
        "warm_step                 : 200",
        PREFIX + "Epoch 1, step 20, epoch 1/2 (40%), elapsed 0.4 min, ETA 1.5 min, "
        "loss[4.031 over 623 frames], tot_loss[6.25], lr: 2.699e-02",
        "2026-12-01 15:58:28,436 INFO [optim.py:256] Clipping_scale=2.0, grad-norm quartiles "
        "1.232e+01 2.001e+01, threshold=4.629e+01, percent-clipped=3.0",
        PREFIX + "Epoch 1, step 40, epoch 1/2 (80%), elapsed 0.8 min, ETA 0.9 min, "
        "loss[2.011 over 696 frames], tot_loss[4.255], lr: 3.145e-02, grad_scale: 1024.0",
        "2026-12-01 15:52:01,000 INFO [training.py:872] Computing validation loss",
        "2026-12-01 15:52:09,000 INFO [training.py:874] Epoch 1, validation: loss=3.5, "
        "simple_loss=7.25, pruned_loss=1.125, ctc_loss=2.5, over 5678.00 frames.",
        "2026-12-01 15:52:09,100 INFO [training.py:1140] Epoch 1 done: train loss 4.255, "
        "valid loss 3.5 (best valid 3.5 at epoch 1)",
        PREFIX + "Epoch 2, step 60, epoch 2/2 (20%), elapsed 1.1 min, ETA 0.5 min, "
        "loss[1.958 over 707 frames], tot_loss[3.259], lr: 3.587e-02",
    ]
)
# The run resumed from checkpoint-40: step 60 is logged again (different numbers), then 80.
LOG_2 = (
    PREFIX + "Epoch 2, step 60, epoch 2/2 (20%), elapsed 1.2 min, ETA 0.6 min, "
    "loss[1.5 over 700 frames], tot_loss[3.0], lr: 3.587e-02\n"
    + PREFIX
    + "Epoch 2, step 80, epoch 2/2 (90%), elapsed 1.6 min, ETA 0.1 min, "
    "loss[1.25 over 670 frames], tot_loss[2.75], lr: 4.024e-02\n"
    "2026-12-01 15:55:00,000 INFO [training.py:874] Epoch 2, validation: loss=2.125, "
    "simple_loss=5.0, pruned_loss=0.75, over 5678.00 frames.\n"
)

TSV_ROWS = [
    # checkpoint step epoch train_minutes test_set method num_utts wer
    ("checkpoint-20.pt", 20, 1, "0.40", "dev", "greedy_search", 100, "112.50"),
    ("checkpoint-20.pt", 20, 1, "0.40", "dev", "ctc_greedy_search", 100, "98.00"),
    ("checkpoint-20.pt", 20, 1, "0.40", "test-human", "greedy_search", 100, "120.00"),
    ("checkpoint-40.pt", 40, 1, "0.80", "dev", "greedy_search", 100, "60.25"),
    ("checkpoint-40.pt", 40, 1, "0.80", "dev", "ctc_greedy_search", 100, "55.00"),
    ("checkpoint-40.pt", 40, 1, "0.80", "test-human", "greedy_search", 100, "70.00"),
    # the same checkpoint on a smaller subset: the larger subset's row wins
    ("checkpoint-40.pt", 40, 1, "0.80", "dev", "greedy_search", 10, "10.00"),
]


def _write_tsv(path: Path, rows=TSV_ROWS) -> None:
    lines = ["\t".join(pp.WER_COLUMNS)] + ["\t".join(str(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _make_exp(tmp_path: Path, name: str, tsv: bool = True, logs=(LOG_1, LOG_2)) -> Path:
    exp = tmp_path / name
    (exp / "log").mkdir(parents=True)
    for i, text in enumerate(logs):
        (exp / "log" / f"log-train-2026-12-01-15-5{i}-00").write_text(text, encoding="utf-8")
    if tsv:
        _write_tsv(exp / "wer-vs-time.tsv")
    return exp


def test_parse_train_log_gives_the_logged_numbers() -> None:
    log = pp.parse_train_log(LOG_1.splitlines())
    assert [(p.step, p.epoch, p.loss, p.tot_loss, p.minutes) for p in log.steps] == [
        (20, 1, 4.031, 6.25, 0.4),
        (40, 1, 2.011, 4.255, 0.8),
        (60, 2, 1.958, 3.259, 1.1),
    ]
    # the validation line's own "loss=", not simple_loss/pruned_loss; at the last logged step
    assert [(v.epoch, v.step, v.loss) for v in log.valid] == [(1, 40, 3.5)]


def test_read_train_logs_joins_resumed_logs_in_name_order(tmp_path: Path) -> None:
    exp = _make_exp(tmp_path, "exp", tsv=False, logs=(LOG_1, LOG_2))
    log = pp.read_train_logs(exp)
    assert [(p.step, p.tot_loss) for p in log.steps] == [
        (20, 6.25),
        (40, 4.255),
        (60, 3.0),  # logged again after the resume: the later line wins
        (80, 2.75),
    ]
    assert [(v.epoch, v.step, v.loss) for v in log.valid] == [(1, 40, 3.5), (2, 80, 2.125)]


def test_read_wer_tsv_and_series(tmp_path: Path) -> None:
    path = tmp_path / "wer-vs-time.tsv"
    _write_tsv(path)
    rows = pp.read_wer_tsv(path)
    assert len(rows) == 7
    assert rows[0] == pp.WerRow(
        "checkpoint-20.pt", 20, "1", 0.4, "dev", "greedy_search", 100, 112.5
    )

    series = pp.wer_series(rows, test_sets=["test-human", "dev"], methods=["greedy_search"])
    assert list(series) == [("test-human", "greedy_search"), ("dev", "greedy_search")]
    assert series[("dev", "greedy_search")] == [(0.4, 112.5), (0.8, 60.25)]
    assert series[("test-human", "greedy_search")] == [(0.4, 120.0), (0.8, 70.0)]
    assert pp.wer_series(rows)[("dev", "ctc_greedy_search")] == [(0.4, 98.0), (0.8, 55.0)]


def test_wer_axis_top() -> None:
    assert pp.wer_axis_top([12.5, 40.0]) == (45.0, False)
    assert pp.wer_axis_top([12.5, 97.0]) == (100.0, False)
    assert pp.wer_axis_top([12.5, 112.5, float("nan")]) == (100.0, True)
    assert pp.wer_axis_top([]) == (100.0, False)


def test_read_wer_tsv_names_the_file_of_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "wer-vs-time.tsv"
    _write_tsv(path, [("checkpoint-20.pt", 20, 1, "soon", "dev", "greedy_search", 100, "1.0")])
    with pytest.raises(ValueError, match=r"wer-vs-time.tsv, line 2"):
        pp.read_wer_tsv(path)


def test_parse_run() -> None:
    assert pp.parse_run("A=exp/a=b") == ("A", Path("exp/a=b"))
    assert pp.parse_run("exp/B-ref1") == ("B-ref1", Path("exp/B-ref1"))
    with pytest.raises(ValueError):
        pp.parse_run("=exp")


def test_main_writes_a_png_atomically(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = _make_exp(tmp_path, "A")
    b = _make_exp(tmp_path, "B", tsv=False)  # loss curve only, and a note
    out_dir = tmp_path / "plots"
    out_dir.mkdir()
    out = out_dir / "progress.png"
    pp.main(
        [
            "--run",
            f"A-baseline={a}",
            "--run",
            f"B-ref1={b}",
            "--methods",
            "greedy_search,ctc_greedy_search",
            "--test-sets",
            "dev,test-human",
            "--title",
            "synthetic",
            "--out",
            str(out),
        ]
    )
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # two panels with axes, lines and text, not an empty canvas
    assert [p.name for p in out_dir.iterdir()] == ["progress.png"]  # no temporary file left
    assert "B-ref1: no wer-vs-time.tsv" in capsys.readouterr().err


def test_no_data_is_a_one_line_error(tmp_path: Path) -> None:
    empty = _make_exp(tmp_path, "empty", tsv=False, logs=("Training started\n",))
    out = tmp_path / "never.png"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--run", f"E={empty}", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("plot_progress.py: no data to plot")
    assert f"E={empty}" in result.stderr
    assert not out.exists()


def test_a_missing_folder_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as e:
        pp.main(["--run", f"X={tmp_path / 'nope'}", "--out", str(tmp_path / "x.png")])
    assert isinstance(e.value.code, str) and "\n" not in e.value.code
    assert e.value.code.startswith("plot_progress.py: --run X=") and "not a folder" in e.value.code
