"""``--lr-decay-batches 0``: the cosine/poly decay sized to the run (conv_ctc's default, #13)."""

import argparse
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from icefall_lite.errors import UsageError
from icefall_lite.optim import WarmupDecay
from icefall_lite.training.flags import (
    add_training_arguments,
    check_training_arguments,
    get_training_params,
)
from icefall_lite.training.run import build_optimizer_and_scheduler, size_lr_decay_to_run
from icefall_lite.utils import AttributeDict


def _scheduler(decay_batches, warmup_batches: int = 10, min_lr: float = 0.0) -> WarmupDecay:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    return WarmupDecay(optimizer, decay_batches, warmup_batches=warmup_batches, min_lr=min_lr)


class _Sampler:
    """Yields ``per_epoch[epoch]`` batches after ``set_epoch(epoch)``."""

    def __init__(self, per_epoch) -> None:
        self.per_epoch = per_epoch
        self.epoch = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        assert self.epoch is not None, "the counter must set the epoch it counts"
        return iter(range(self.per_epoch[self.epoch]))


def _state(scheduler, num_epochs: int, accum_grad: int = 1):
    params = AttributeDict(num_epochs=num_epochs, accum_grad=accum_grad)
    return SimpleNamespace(
        scheduler=scheduler, params=params, world_size=1, device=torch.device("cpu")
    )


def test_unsized_decay_holds_the_base_rate_after_the_warm_up():
    s = _scheduler(None, warmup_batches=10)
    s.step_batch(4)
    assert s.get_last_lr()[0] == pytest.approx(0.5)
    s.step_batch(1000)
    assert s.get_last_lr()[0] == pytest.approx(1.0)


def test_sized_to_epoch_batches_times_epochs_reaches_the_floor_at_the_end():
    s = _scheduler(None, warmup_batches=10, min_lr=0.01)
    sampler = _Sampler({0: 70, 1: 75})
    size_lr_decay_to_run(_state(s, num_epochs=6), lambda: sampler)
    assert s.decay_batches == 420  # epoch 0's 70 batches x 6 epochs
    s.step_batch(215)  # half way through the decay
    assert s.get_last_lr()[0] == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    s.step_batch(419)
    assert 0.01 < s.get_last_lr()[0] < 0.0101
    s.step_batch(420)
    assert s.get_last_lr()[0] == pytest.approx(0.01)


def test_accum_grad_divides_the_steps():
    s = _scheduler(None)
    size_lr_decay_to_run(_state(s, num_epochs=4, accum_grad=4), lambda: _Sampler({0: 50}))
    assert s.decay_batches == 50


def test_a_resumed_run_keeps_the_length_it_started_with():
    first = _scheduler(None)
    size_lr_decay_to_run(_state(first, num_epochs=3), lambda: _Sampler({0: 100}))
    first.step_batch(120)
    resumed = _scheduler(None)
    resumed.load_state_dict(first.state_dict())

    def must_not_count():
        raise AssertionError("a resumed run must not recount (the data may have changed)")

    size_lr_decay_to_run(_state(resumed, num_epochs=3), must_not_count)
    assert resumed.decay_batches == 300
    assert resumed.get_last_lr() == pytest.approx(first.get_last_lr())


def test_an_explicit_length_is_left_alone_and_wins_over_a_saved_one():
    saved = _scheduler(500)
    s = _scheduler(200)
    s.load_state_dict(saved.state_dict())
    size_lr_decay_to_run(_state(s, num_epochs=3), lambda: _Sampler({0: 999}))
    assert s.decay_batches == 200


def test_a_run_shorter_than_the_warm_up_is_a_usage_error():
    s = _scheduler(None, warmup_batches=200)
    expected = r"--lr-decay-batches 0: .*6 optimizer steps \(3 batches per epoch"
    with pytest.raises(UsageError, match=expected):
        size_lr_decay_to_run(_state(s, num_epochs=2), lambda: _Sampler({0: 3}))


def test_flags_accept_zero_and_the_builder_leaves_the_length_unsized():
    params = AttributeDict(
        lr_schedule="cosine",
        lr_decay_batches=0,
        lr_warmup_batches=200,
        optim="adamw",
        base_lr=0.01,
        min_lr=1e-5,
        weight_decay=0.0,
        num_epochs=6,
        vocab_size=8,
    )
    model = nn.Linear(2, 2)
    _, scheduler = build_optimizer_and_scheduler(params, model)
    assert isinstance(scheduler, WarmupDecay) and scheduler.decay_batches is None
    try:  # 0 passes this check (a later one may still want files this test does not make)
        _check(params)
    except (ValueError, FileNotFoundError) as error:
        assert "--lr-decay-batches" not in str(error)
    params.lr_decay_batches = 150
    with pytest.raises(ValueError, match="--lr-decay-batches 150 must exceed the warm-up"):
        _check(params)


def _check(params: AttributeDict) -> None:
    # check_training_arguments validates every flag; the unrelated ones get their defaults.
    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    full = AttributeDict(vars(parser.parse_args([])))
    full.update(get_training_params())
    full.update(params)
    check_training_arguments(full)
