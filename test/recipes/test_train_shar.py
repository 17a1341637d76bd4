"""train.py --shar-dir: Lhotse Shar shards written by prepare.sh's stage-9 script train exactly
as the cut manifests they came from (same batches, same losses, same weights), and resume
mid-epoch exactly."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train_synth import corpus  # noqa: F401 (the fixture)
from test_train_synth import _assert_same_training_state, _env, _load, _run, _train_cmd

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPORT_SHAR = REPO_ROOT / "egs" / "synth" / "ASR" / "local" / "export_shar.py"


@pytest.fixture(scope="module")
def shar_dir(corpus):  # noqa: F811
    out = corpus / "data" / "shar"
    result = subprocess.run(
        [
            sys.executable,
            str(EXPORT_SHAR),
            "--prefix",
            "synth",
            "--splits",
            "train",
            "dev",
            "--fbank-dir",
            str(corpus / "data" / "fbank"),
            "--shar-dir",
            str(out),
            "--shard-size",
            "10",
        ],
        cwd=corpus,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (out / "synth_train").iterdir()) == [
        "cuts.000000.jsonl.gz",
        "cuts.000001.jsonl.gz",
        "cuts.000002.jsonl.gz",
        "features.000000.tar",
        "features.000001.tar",
        "features.000002.tar",
        "shar.json",
    ]
    return out


def _loss_curve(exp_dir: Path) -> list:
    """(step, running training loss, frames) of every mid-epoch checkpoint, in step order."""
    curve = []
    for path in sorted(exp_dir.glob("checkpoint-*.pt"), key=lambda p: int(p.stem.split("-")[1])):
        tracker = _load(path)["train_loss_tracker"]
        curve.append((int(path.stem.split("-")[1]), tracker["loss"], tracker["frames"]))
    return curve


def test_training_from_shar_gives_the_same_loss_curve(corpus, shar_dir, tmp_path):  # noqa: F811
    from_cuts, from_shar = tmp_path / "cuts", tmp_path / "shar"
    _run(_train_cmd(corpus, from_cuts, "--num-epochs", "1"), corpus)
    result = _run(
        _train_cmd(corpus, from_shar, "--num-epochs", "1", "--shar-dir", str(shar_dir)), corpus
    )
    assert (
        f"Reading synth train from the Shar shards in {shar_dir / 'synth_train'}" in result.stderr
    )
    curve = _loss_curve(from_cuts)
    assert len(curve) >= 2 and all(frames > 0 for _, _, frames in curve)
    assert _loss_curve(from_shar) == curve
    a, b = _load(from_cuts / "epoch-1.pt"), _load(from_shar / "epoch-1.pt")
    assert (a["train_loss"], a["valid_loss"]) == (b["train_loss"], b["valid_loss"])
    _assert_same_training_state(a, b)


def test_missing_shar_split_is_a_one_line_error(corpus, tmp_path):  # noqa: F811
    result = subprocess.run(
        _train_cmd(corpus, tmp_path / "exp", "--shar-dir", str(tmp_path / "nowhere")),
        cwd=corpus,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    expected = (
        f"train.py: error: --shar-dir {tmp_path / 'nowhere'}: synth_train/shar.json not found"
    )
    assert result.stderr.strip().splitlines()[-1].startswith(expected)


@pytest.mark.slow
def test_resume_from_shar_mid_epoch_is_exact(corpus, shar_dir, tmp_path):  # noqa: F811
    full = tmp_path / "full"
    _run(_train_cmd(corpus, full, "--shar-dir", str(shar_dir)), corpus)
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy(full / "checkpoint-2.pt", resumed / "checkpoint-2.pt")
    result = _run(
        _train_cmd(corpus, resumed, "--shar-dir", str(shar_dir), "--start-batch", "2"), corpus
    )
    assert f"Resuming from {resumed / 'checkpoint-2.pt'}" in result.stderr
    _assert_same_training_state(_load(full / "epoch-2.pt"), _load(resumed / "epoch-2.pt"))
    assert torch.equal(
        torch.tensor([c[1] for c in _loss_curve(full) if c[0] > 2]),
        torch.tensor([c[1] for c in _loss_curve(resumed) if c[0] > 2]),
    )
