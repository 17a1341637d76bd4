"""Novograd against steps computed by hand, and the warm-up + cosine / polynomial schedule."""

import math

import pytest
import torch

from icefall_lite.optim import Novograd, WarmupDecay


def test_novograd_two_steps_by_hand():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    b = torch.nn.Parameter(torch.tensor([0.5]))
    opt = Novograd([w, b], lr=0.1, betas=(0.9, 0.5), eps=0.0, weight_decay=0.01)

    # Step 1: g_w = (3, 4), ||g_w||^2 = 25 -> v = 25, u = g / 5 + 0.01 w = (0.61, 0.78), m = u.
    w.grad = torch.tensor([3.0, 4.0])
    b.grad = torch.tensor([2.0])  # v = 4, u = 2 / 2 + 0.005 = 1.005
    opt.step()
    torch.testing.assert_close(w.detach(), torch.tensor([1.0 - 0.061, -2.0 - 0.078]))
    torch.testing.assert_close(b.detach(), torch.tensor([0.5 - 0.1005]))

    # Step 2: g_w = (0, 1): v = 0.5 * 25 + 0.5 * 1 = 13, u = g / sqrt(13) + 0.01 w_1,
    # m = 0.9 * m_1 + u, w_2 = w_1 - 0.1 m.
    w1 = torch.tensor([0.939, -2.078])
    w.grad = torch.tensor([0.0, 1.0])
    b.grad = None  # a parameter without a gradient is left alone
    opt.step()
    u = torch.tensor([0.0, 1.0]) / math.sqrt(13.0) + 0.01 * w1
    m = 0.9 * torch.tensor([0.61, 0.78]) + u
    torch.testing.assert_close(w.detach(), w1 - 0.1 * m)
    torch.testing.assert_close(b.detach(), torch.tensor([0.3995]))


def test_novograd_grad_averaging_scales_the_momentum_input():
    w = torch.nn.Parameter(torch.tensor([2.0]))
    opt = Novograd([w], lr=1.0, betas=(0.8, 0.5), eps=0.0, grad_averaging=True)
    w.grad = torch.tensor([-4.0])  # u = -1, m = 0.2 * -1
    opt.step()
    torch.testing.assert_close(w.detach(), torch.tensor([2.2]))


def test_novograd_minimises_a_quadratic_and_round_trips_its_state():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5))
    opt = Novograd([w], lr=0.05, betas=(0.9, 0.9))
    for _ in range(300):
        opt.zero_grad()
        ((w - 3.0) ** 2).sum().backward()
        opt.step()
    assert torch.allclose(w.detach(), torch.full((5,), 3.0), atol=0.1)
    again = Novograd([torch.nn.Parameter(w.detach().clone())], lr=0.05)
    again.load_state_dict(opt.state_dict())
    assert again.state_dict()["state"][0]["step"] == 300


def test_novograd_rejects_bad_settings():
    with pytest.raises(ValueError, match="betas"):
        Novograd([torch.nn.Parameter(torch.zeros(1))], betas=(1.0, 0.5))


def _schedule(**kwargs):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return opt, WarmupDecay(opt, **kwargs)


def test_warm_up_then_cosine():
    opt, sched = _schedule(decay_batches=110, warmup_batches=10, kind="cosine", min_lr=0.1)
    lrs = {}
    for batch in (0, 4, 9, 10, 60, 110, 500):
        sched.step_batch(batch)
        lrs[batch] = opt.param_groups[0]["lr"]
    assert lrs[0] == pytest.approx(0.1) and lrs[4] == pytest.approx(0.5)
    assert lrs[9] == pytest.approx(1.0) and lrs[10] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.1 + 0.9 * 0.5)  # half way: cos(pi / 2) = 0
    assert lrs[110] == pytest.approx(0.1) and lrs[500] == pytest.approx(0.1)


def test_polynomial_decay_and_state_dict():
    opt, sched = _schedule(decay_batches=100, warmup_batches=0, kind="poly", power=2.0)
    sched.step_batch(50)
    assert sched.get_last_lr()[0] == pytest.approx(0.25)
    opt2, sched2 = _schedule(decay_batches=100, warmup_batches=0, kind="poly", power=2.0)
    sched2.load_state_dict(sched.state_dict())
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.25)


def test_warmup_decay_rejects_bad_settings():
    with pytest.raises(ValueError, match="--lr-decay-batches"):
        _schedule(decay_batches=10, warmup_batches=10)
    with pytest.raises(ValueError, match="--lr-schedule"):
        _schedule(decay_batches=100, kind="linear")
