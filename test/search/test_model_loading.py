"""Checkpoint selection and averaging for decoding, and checkpoint-vs-flag consistency."""

import argparse

import pytest
import torch
from torch import nn

from icefall_lite.checkpoint import CheckpointError, save_checkpoint
from icefall_lite.cli.checkpoints import (
    add_tracked_arguments,
    explicit_arguments,
    load_model_for_inference,
    same_setting,
)
from icefall_lite.utils import AttributeDict

BATCHES_PER_EPOCH = 10


class Constant(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(width))


def build(params):
    return Constant(params.width)


def _write_epochs(exp_dir, num_epochs, width=3):
    """epoch-e.pt (and checkpoint-10e.pt) whose weights end epoch e at 10 * e, while the
    running average over every batch so far (average_period 1) treats the weights as e during
    all of epoch e: mean over epochs 1..e = (e + 1) / 2. The two selections (files vs. running
    average) therefore give values a factor of 10 apart."""
    for e in range(1, num_epochs + 1):
        model, avg = Constant(width), Constant(width)
        model.weight.data.fill_(10.0 * e)
        avg.weight.data.fill_((e + 1) / 2)
        params = {
            "width": width,
            "vocab_size": 7,
            "average_period": 1,
            "batch_idx_train": BATCHES_PER_EPOCH * e,
        }
        save_checkpoint(exp_dir / f"epoch-{e}.pt", model, model_avg=avg, params=params)
        save_checkpoint(
            exp_dir / f"checkpoint-{BATCHES_PER_EPOCH * e}.pt", model, model_avg=avg, params=params
        )


def _params(exp_dir, **kw):
    p = AttributeDict(exp_dir=exp_dir, epoch=4, iter=0, avg=2, use_averaged_model=False, width=1)
    p.update(kw)
    return p


@pytest.mark.parametrize(
    "selection, expected",
    [
        (dict(epoch=3, avg=1), 30.0),
        (dict(epoch=4, avg=2), 35.0),  # mean of epoch-3 and epoch-4
        (dict(epoch=4, avg=3), 30.0),
        # running average over batches (20, 40]: epochs 3 and 4 -> 3.5
        (dict(epoch=4, avg=2, use_averaged_model=True), 3.5),
        # (10, 40]: epochs 2..4 -> 3.0
        (dict(epoch=4, avg=3, use_averaged_model=True), 3.0),
        (dict(iter=30, avg=2), 25.0),  # checkpoint-20 and checkpoint-30
        (dict(iter=40, avg=1, use_averaged_model=True), 4.0),  # window (30, 40]
        (dict(iter=40, avg=1), 40.0),
    ],
)
def test_averaging_options_load_expected_weights(tmp_path, selection, expected):
    _write_epochs(tmp_path, 4)
    params = _params(tmp_path, **selection)
    model = load_model_for_inference(params, build, model_keys=["width"])
    assert params.width == 3, "architecture must come from the checkpoint"
    assert params.vocab_size == 7
    assert not model.training
    torch.testing.assert_close(model.weight.data, torch.full((3,), expected))


def test_missing_checkpoints_list_what_exists(tmp_path):
    _write_epochs(tmp_path, 3)
    with pytest.raises(CheckpointError, match=r"missing \[4\].*1, 2, 3"):
        load_model_for_inference(_params(tmp_path, epoch=4, avg=2), build, ["width"])
    with pytest.raises(CheckpointError, match="checkpoint"):
        load_model_for_inference(_params(tmp_path, iter=35, avg=1), build, ["width"])


def test_contradicting_model_flag_is_an_error(tmp_path):
    _write_epochs(tmp_path, 2)
    with pytest.raises(ValueError, match="--width 5 contradicts"):
        load_model_for_inference(_params(tmp_path, epoch=2, avg=1), build, ["width"], {"width": 5})
    # Agreeing flags are fine.
    load_model_for_inference(_params(tmp_path, epoch=2, avg=1), build, ["width"], {"width": "3"})


def test_explicit_arguments_only_reports_given_flags():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epoch", type=int, default=30)
    added = add_tracked_arguments(
        parser,
        lambda p: p.add_argument("--context-size", type=int, default=2),
        lambda p: p.add_argument("--encoder-dim", type=str, default="192,256"),
    )
    assert added == ["context_size", "encoder_dim"]
    assert explicit_arguments(parser, ["--context-size", "1"]) == {"context_size": 1}
    assert explicit_arguments(parser, []) == {}


@pytest.mark.parametrize(
    "given, stored, same",
    [
        ("4", 4, True),
        ("2,2,3", "2,2,3", True),
        ("4", "4,4,4", True),
        ("2,2", [2, 2], True),
        ("2,3", "2,2", False),
        ("4", "4,5", False),
        (True, False, False),
    ],
)
def test_same_setting(given, stored, same):
    assert same_setting(given, stored) is same
