"""The reference RNN-T training controls: warm-up/hold/decay schedule, global batch check,
joint-network learning-rate factor, EMA weights."""

import math

import pytest
import torch
from torch import nn

from icefall_lite.optim import WarmupHoldDecay
from icefall_lite.training.ema import ModelEma, joint_net_lr_factor
from icefall_lite.training.flags import resolve_global_batch
from icefall_lite.training.run import build_optimizer_and_scheduler
from icefall_lite.utils import AttributeDict


def _schedule(base_lr=1e-3, warmup=10, hold=5, half_life=4.0, min_lr=1e-5):
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base_lr)
    return WarmupHoldDecay(optimizer, warmup, hold, half_life, min_lr)


def _lr_at(scheduler, step):
    scheduler.step_batch(step)
    return scheduler.get_last_lr()[0]


def test_schedule_shape_at_the_boundaries():
    s = _schedule()
    assert _lr_at(s, 0) == pytest.approx(1e-5)  # warm-up starts at min_lr
    assert _lr_at(s, 5) == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5)  # linear
    assert _lr_at(s, 9) < 1e-3
    assert _lr_at(s, 10) == pytest.approx(1e-3)  # warm-up done: hold
    assert _lr_at(s, 15) == pytest.approx(1e-3)  # last step of the hold
    assert _lr_at(s, 16) == pytest.approx(1e-3 * 0.5 ** (1 / 4))  # decay starts
    assert _lr_at(s, 19) == pytest.approx(1e-3 * 0.5)  # one half life after the hold
    assert _lr_at(s, 23) == pytest.approx(1e-3 * 0.25)
    assert _lr_at(s, 10_000) == pytest.approx(1e-5)  # floored at min_lr


def test_schedule_without_warmup_or_hold_decays_at_once():
    s = _schedule(warmup=0, hold=0)
    assert _lr_at(s, 0) == pytest.approx(1e-3)
    assert _lr_at(s, 4) == pytest.approx(5e-4)


def test_schedule_state_resumes():
    s = _schedule()
    s.step_batch(17)
    other = _schedule()
    other.load_state_dict(s.state_dict())
    assert other.get_last_lr() == s.get_last_lr()


def test_bad_schedule_settings_are_rejected():
    with pytest.raises(ValueError, match="--half-life-steps"):
        _schedule(half_life=0)
    with pytest.raises(ValueError, match="--hold-steps"):
        _schedule(hold=-1)


def test_global_batch_sets_the_batch():
    params = AttributeDict(global_batch_size=120, accum_grad=3, max_duration=30)
    resolve_global_batch(params, world_size=2)
    assert params.max_duration == 20


def test_global_batch_that_does_not_divide_names_the_three_numbers():
    params = AttributeDict(global_batch_size=100, accum_grad=3, max_duration=30)
    with pytest.raises(ValueError) as error:
        resolve_global_batch(params, world_size=2)
    message = str(error.value)
    assert "\n" not in message
    for number in ("100", "--accum-grad 3", "world size 2"):
        assert number in message
    assert params.max_duration == 30  # untouched


def test_joint_net_lr_factor_defaults():
    assert joint_net_lr_factor(8704) == pytest.approx(0.343, abs=1e-3)
    assert joint_net_lr_factor(1024) == 1.0
    assert joint_net_lr_factor(128) == 1.0
    assert joint_net_lr_factor(8704, 0.5) == 0.5
    with pytest.raises(ValueError, match="--joint-net-lr-factor"):
        joint_net_lr_factor(128, 0.0)


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(3, 3)
        self.joiner = nn.Linear(3, 2)


@pytest.mark.parametrize("optimizer", ["adamw", "scaled_adam"])
def test_joint_network_gets_its_factor(optimizer):
    params = AttributeDict(
        vocab_size=4096,
        base_lr=0.01,
        optim=optimizer,
        lr_schedule="warmup_hold_decay",
        warmup_steps=0,
        hold_steps=10,
        half_life_steps=5,
        min_lr=0.0,
    )
    model = _Toy()
    opt, _ = build_optimizer_and_scheduler(params, model)
    joiner_ids = {id(p) for p in model.joiner.parameters()}
    for group in opt.param_groups:
        ids = {id(p) for p in group["params"]}
        expected = 0.01 * 0.5 if ids <= joiner_ids else 0.01  # 1/sqrt(4096/1024)
        assert not (ids & joiner_ids) or ids <= joiner_ids
        assert group["lr"] == pytest.approx(expected)


def test_ema_is_the_exponential_average():
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ModelEma(model, decay=0.9)
    for value in (1.0, 2.0):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
    # the ramp: d = 1/10, then 2/11: 0 -> 0.9 * 1 = 0.9 -> 2/11 * 0.9 + 9/11 * 2
    first = 0.9
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 2 / 11 * first + 9 / 11 * 2))
    for _ in range(200):  # past the ramp the decay is the given one
        ema.update(model)
    before = ema.module.weight.clone()
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model)
    assert torch.allclose(ema.module.weight, 0.9 * before + 0.1 * 3.0)
    restored = ModelEma(nn.Linear(2, 1, bias=False), decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert restored.decay == 0.9 and torch.equal(restored.module.weight, ema.module.weight)
    assert restored.num_updates == ema.num_updates == 203
    assert not math.isclose(float(model.weight[0, 0]), float(ema.module.weight[0, 0]))
    with pytest.raises(ValueError, match="--ema"):
        ModelEma(model, decay=1.0)
