"""Bad input to train.py (issue #18's probes): --exp-dir a file, a broken cut manifest, a
truncated checkpoint to resume from, --init-from a checkpoint lacking tensors, stale partial
files of a killed save."""

import logging
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import RECIPE, assert_one_line_error, run_script, tiny_params

from icefall_lite.checkpoint import CheckpointError, remove_stale_temporary_files, save_checkpoint
from icefall_lite.models import build_model
from icefall_lite.training.checkpoints import init_model_from


def _train_args(recipe_dir, exp_dir, *extra):
    return [
        "--exp-dir",
        str(exp_dir),
        "--bpe-model",
        str(recipe_dir["bpe_model"]),
        "--manifest-dir",
        str(recipe_dir["manifest_dir"]),
        "--model-size",
        "tiny",
        "--num-workers",
        "0",
        "--enable-musan",
        "0",
        *extra,
    ]


@pytest.fixture(scope="module")
def train_manifests(recipe_dir, tmp_path_factory):
    """synth_cuts_train/dev.jsonl.gz (copies of the tiny dev set)."""
    d = tmp_path_factory.mktemp("train_fbank")
    for split in ("train", "dev"):
        shutil.copy(
            recipe_dir["manifest_dir"] / "synth_cuts_dev.jsonl.gz",
            d / f"synth_cuts_{split}.jsonl.gz",
        )
    return d


def test_exp_dir_is_a_file(recipe_dir, tmp_path, capsys):
    exp = tmp_path / "exp"
    exp.write_text("")
    outcome = run_script("train", _train_args(recipe_dir, exp), capsys)
    assert_one_line_error(outcome, "train.py", "--exp-dir", "not a directory")


@pytest.mark.parametrize("content", [b"not json at all\n", b"\x1f\x8b\x08garbage", b"[1, 2]\n"])
def test_broken_training_manifest_names_the_file(
    recipe_dir, train_manifests, tmp_path, capsys, content
):
    d = tmp_path / "fbank"
    shutil.copytree(train_manifests, d)
    (d / "synth_cuts_train.jsonl.gz").write_bytes(content)
    outcome = run_script(
        "train", _train_args(recipe_dir, tmp_path / "exp", "--manifest-dir", str(d)), capsys
    )
    assert_one_line_error(outcome, "train.py", "synth_cuts_train.jsonl.gz", "cut manifest")


def test_bad_flag_values(recipe_dir, tmp_path, capsys):
    for flags, needle in (
        (["--max-duration", "-1"], "--max-duration must be positive"),
        (["--num-epochs", "x"], "--num-epochs: invalid int value"),
        (["--keep-last-k", "0"], "--keep-last-k"),
    ):
        outcome = run_script("train", _train_args(recipe_dir, tmp_path / "exp", *flags), capsys)
        assert_one_line_error(outcome, "train.py", needle)


@pytest.mark.parametrize(
    "world_size", [1, pytest.param(2, marks=pytest.mark.slow, id="ddp-2-ranks")]
)
def test_truncated_resume_checkpoint_real_script(recipe_dir, train_manifests, tmp_path, world_size):
    """Through train.py's own process: the error is raised inside the training job (with
    --world-size 2 inside both spawned ranks, and still one line from the parent)."""
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "epoch-1.pt").write_bytes(b"PK\x03\x04 half a zip file")
    args = _train_args(
        recipe_dir,
        exp,
        "--manifest-dir",
        str(train_manifests),
        "--start-epoch",
        "2",
        "--num-epochs",
        "2",
        "--tensorboard",
        "0",
        "--world-size",
        str(world_size),
    )
    proc = subprocess.run(
        [sys.executable, str(RECIPE / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: ") and "epoch-1.pt" in last, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def _save(path, params):
    torch.manual_seed(0)
    model = build_model(params)
    save_checkpoint(path, model, params=dict(params))
    return model


def test_init_from_missing_tensors_is_an_error_unless_allowed(tmp_path, caplog):
    source = tmp_path / "no-ctc.pt"
    _save(source, tiny_params("--use-ctc", "0"))
    target = build_model(tiny_params("--use-ctc", "1"))
    with pytest.raises(CheckpointError, match=r"--init-from .*no-ctc.pt: \d+ of the model's"):
        init_model_from(target, source, allow_missing=False)
    with caplog.at_level(logging.WARNING):
        init_model_from(target, source, allow_missing=True)
    assert any("start from random initialisation" in r.message for r in caplog.records)


def test_init_from_a_model_of_another_size_is_an_error(tmp_path):
    source = tmp_path / "wide.pt"
    _save(source, tiny_params("--joiner-dim", "48"))
    with pytest.raises(CheckpointError, match="model does not match"):
        init_model_from(build_model(tiny_params()), source, allow_missing=True)


def test_init_from_truncated_checkpoint(tmp_path):
    source = tmp_path / "cut.pt"
    source.write_bytes(b"PK\x03\x04")
    with pytest.raises(CheckpointError, match="cut.pt: cannot read checkpoint"):
        init_model_from(build_model(tiny_params()), source, allow_missing=False)


def test_init_from_allow_missing_flag(recipe_dir, tmp_path, capsys):
    outcome = run_script(
        "train",
        _train_args(recipe_dir, tmp_path / "exp", "--init-from-allow-missing", "maybe"),
        capsys,
    )
    assert_one_line_error(outcome, "train.py", "--init-from-allow-missing")


def test_stale_temporary_files_are_removed(tmp_path):
    (tmp_path / ".epoch-3.pt.k2j4h1.tmp").write_bytes(b"partial")
    (tmp_path / ".checkpoint-8.pt.abc.tmp").write_bytes(b"partial")
    (tmp_path / "epoch-2.pt").write_bytes(b"kept")
    (tmp_path / "notes.tmp").write_bytes(b"kept: not a save's temporary name")
    removed = remove_stale_temporary_files(tmp_path)
    assert len(removed) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-2.pt", "notes.tmp"]
