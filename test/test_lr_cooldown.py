"""The linear learning-rate cooldown at the end of any schedule (``--lr-cooldown-epochs``)."""

import pytest
import torch
from torch import nn

from icefall_lite.optim import Eden, WarmupHoldDecay
from icefall_lite.training.flags import check_training_arguments
from icefall_lite.training.run import build_optimizer_and_scheduler
from icefall_lite.utils import AttributeDict


def _eden(cooldown_epochs: float, num_epochs: int = 4) -> Eden:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = Eden(optimizer, lr_batches=1e9, lr_epochs=1e9, warmup_batches=0)
    scheduler.set_cooldown(num_epochs, cooldown_epochs)
    return scheduler


def _run_epoch(scheduler, epoch: int, first_batch: int, steps: int) -> list:
    """The training loop's calls for one epoch (1-based); returns the lr after each step."""
    scheduler.step_epoch(epoch - 1)
    lrs = []
    for batch in range(first_batch + 1, first_batch + steps + 1):
        scheduler.step_batch(batch)
        lrs.append(scheduler.get_last_lr()[0])
    return lrs


def test_lr_is_untouched_before_the_cooldown_and_falls_linearly_to_zero():
    # Eden with huge lr_batches / lr_epochs is flat at 1.0, so the factor is all we see.
    s = _eden(cooldown_epochs=2, num_epochs=4)
    assert _run_epoch(s, 1, 0, 10) == pytest.approx([1.0] * 10)
    assert _run_epoch(s, 2, 10, 10) == pytest.approx([1.0] * 10)
    # Epoch 3: progress 2 + k/10 epochs, 2 - k/10 remaining of a 2-epoch cooldown.
    assert _run_epoch(s, 3, 20, 10) == pytest.approx([1.0 - k / 20 for k in range(1, 11)])
    epoch4 = _run_epoch(s, 4, 30, 10)
    assert epoch4 == pytest.approx([0.5 - k / 20 for k in range(1, 11)])
    assert epoch4[-1] == pytest.approx(0.0)


def test_no_cooldown_leaves_the_schedule_as_it_was():
    plain = Eden(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.045), 300, 2)
    off = Eden(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.045), 300, 2)
    off.set_cooldown(4, 0)
    for epoch in range(1, 5):
        assert _run_epoch(off, epoch, 10 * (epoch - 1), 10) == pytest.approx(
            _run_epoch(plain, epoch, 10 * (epoch - 1), 10)
        )


def test_cooldown_multiplies_other_schedules_too():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1e-3)
    s = WarmupHoldDecay(optimizer, warmup_steps=0, hold_steps=100, half_life_steps=1, min_lr=0)
    s.set_cooldown(2, 1)
    _run_epoch(s, 1, 0, 20)
    assert _run_epoch(s, 2, 20, 20)[9] == pytest.approx(1e-3 * 0.5)


def test_resume_mid_epoch_and_from_an_epoch_checkpoint_give_the_same_lrs():
    reference = _eden(cooldown_epochs=1.5)
    lrs = [_run_epoch(reference, e, 10 * (e - 1), 10) for e in range(1, 5)]

    # mid-epoch 3 (checkpoint-25.pt): the training loop calls step_epoch(2) again on resume
    first = _eden(cooldown_epochs=1.5)
    for e in (1, 2):
        _run_epoch(first, e, 10 * (e - 1), 10)
    _run_epoch(first, 3, 20, 5)
    resumed = _eden(cooldown_epochs=1.5)
    resumed.load_state_dict(first.state_dict())
    resumed.step_epoch(2)
    assert [_lr_after(resumed, b) for b in range(26, 31)] == pytest.approx(lrs[2][5:])

    # from epoch-3.pt (--start-epoch 4)
    resumed = _eden(cooldown_epochs=1.5)
    resumed.load_state_dict(reference_state_after(3))
    assert _run_epoch(resumed, 4, 30, 10) == pytest.approx(lrs[3])


def _lr_after(scheduler, batch: int) -> float:
    scheduler.step_batch(batch)
    return scheduler.get_last_lr()[0]


def reference_state_after(num_epochs_done: int) -> dict:
    s = _eden(cooldown_epochs=1.5)
    for e in range(1, num_epochs_done + 1):
        _run_epoch(s, e, 10 * (e - 1), 10)
    return s.state_dict()


def test_old_checkpoints_without_the_step_counters_still_load():
    s = _eden(cooldown_epochs=0)
    s.load_state_dict({"epoch": 2, "batch": 40})
    assert s.steps_per_epoch == 0 and s.epoch_start_batch == 40


@pytest.mark.parametrize("cooldown", [-1, 5])
def test_a_cooldown_outside_the_run_is_a_one_line_error(cooldown):
    with pytest.raises(ValueError, match="--lr-cooldown-epochs must be between 0 and --num-epochs"):
        _eden(cooldown_epochs=cooldown, num_epochs=4)
    params = AttributeDict(
        world_size=1,
        num_epochs=4,
        start_epoch=1,
        base_lr=0.045,
        lr_batches=10,
        lr_epochs=2,
        ref_duration=600,
        average_period=10,
        accum_grad=1,
        global_batch_size=0,
        lr_cooldown_epochs=cooldown,
    )
    with pytest.raises(ValueError, match="--lr-cooldown-epochs"):
        check_training_arguments(params)


def test_the_training_flags_reach_the_scheduler():
    params = AttributeDict(
        optim="adamw",
        base_lr=1e-3,
        weight_decay=0.0,
        lr_schedule="eden",
        lr_batches=1e9,
        lr_epochs=1e9,
        lr_warmup_batches=0,
        num_epochs=3,
        lr_cooldown_epochs=1,
    )
    _, scheduler = build_optimizer_and_scheduler(params, nn.Linear(2, 2))
    assert scheduler.num_epochs == 3 and scheduler.cooldown_epochs == 1.0
