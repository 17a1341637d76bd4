"""Zipformer building blocks: activations, BiasNorm, schedules and the gradient regularisers."""

import math

import pytest
import torch
from mini_zipformer import MINI_ZIPFORMER

from icefall_lite.models.zipformer.encoder import CompactRelPositionalEncoding, _rel_to_abs
from icefall_lite.models.zipformer.scaling import (
    Balancer,
    BiasNorm,
    ScheduledFloat,
    SwooshL,
    SwooshR,
    Whiten,
    get_regulariser_state,
    limit_param_value,
    penalize_abs_values_gt,
    set_batch_count,
    set_regulariser_state,
    whitening_metric,
)


def test_swoosh_values():
    x = torch.tensor([-10.0, 0.0, 1.0, 10.0])
    expected_r = [math.log1p(math.exp(v - 1)) - 0.08 * v - 0.313261687 for v in x.tolist()]
    expected_l = [math.log1p(math.exp(v - 4)) - 0.08 * v - 0.035 for v in x.tolist()]
    torch.testing.assert_close(SwooshR()(x), torch.tensor(expected_r))
    torch.testing.assert_close(SwooshL()(x), torch.tensor(expected_l))
    assert abs(SwooshR()(torch.zeros(1)).item()) < 1e-6


def test_bias_norm_normalises_rms_around_the_bias():
    norm = BiasNorm(8)
    with torch.no_grad():
        norm.log_scale.fill_(0.0)
        norm.bias.fill_(0.5)
    x = torch.randn(4, 3, 8) * 5.0
    y = norm(x)
    rms = ((x - 0.5) ** 2).mean(dim=-1, keepdim=True).sqrt()
    torch.testing.assert_close(y, x / rms)
    # channel_dim other than last
    norm1 = BiasNorm(8, channel_dim=1)
    y1 = norm1(x.transpose(1, 2))
    assert y1.shape == (4, 8, 3)


def test_scheduled_float():
    sched = ScheduledFloat((0.0, 0.3), (100.0, 0.1), default=0.05)
    assert float(sched) == 0.05  # no batch count yet
    holder = torch.nn.Module()
    holder.rate = sched
    set_batch_count(holder, 50.0)
    assert float(sched) == pytest.approx(0.2)
    set_batch_count(holder, 500.0)
    assert float(sched) == pytest.approx(0.1)
    holder.eval()
    assert float(sched) == 0.05
    with pytest.raises(ValueError):
        ScheduledFloat((10.0, 1.0), (0.0, 2.0))


def _grad_through(module, x):
    x = x.clone().requires_grad_(True)
    module(x).backward(torch.ones_like(x))
    return x.grad


def test_balancer_pushes_channel_statistics_into_range():
    balancer = Balancer(4, channel_dim=-1, min_positive=0.4, max_positive=0.6, prob=1.0)
    x = torch.rand(100, 4) + 0.1  # every value positive: violates max_positive
    grad = _grad_through(balancer, x)
    # The correction (grad - 1) must point so that a descent step lowers each channel's mean,
    # reducing the positive fraction.
    assert ((grad - 1.0).mean(dim=0) > 0.0).all()
    # Within range: no change.
    x_ok = torch.randn(4000, 4)
    balancer_wide = Balancer(4, channel_dim=-1, min_abs=0.0, max_abs=100.0, prob=1.0)
    torch.testing.assert_close(_grad_through(balancer_wide, x_ok), torch.ones_like(x_ok))
    balancer.eval()
    torch.testing.assert_close(_grad_through(balancer, x), torch.ones_like(x))


def test_whitening_metric_and_whiten_gradient():
    torch.manual_seed(0)
    white = torch.randn(5000, 8)
    assert whitening_metric(white, 1).item() == pytest.approx(1.0, abs=0.05)
    correlated = torch.randn(5000, 1).expand(5000, 8) + 0.01 * torch.randn(5000, 8)
    assert whitening_metric(correlated, 1).item() > 7.0
    whiten = Whiten(num_groups=1, whitening_limit=2.0, prob=1.0, grad_scale=0.1)
    grad = _grad_through(whiten, correlated)
    assert not torch.allclose(grad, torch.ones_like(grad))
    torch.testing.assert_close(_grad_through(whiten, white), torch.ones_like(white))


def test_limit_param_value_and_penalty():
    x = torch.tensor([-2.0, 0.0, 2.0], requires_grad=True)
    limit_param_value(x, -1.0, 1.0, prob=1.0).backward(torch.tensor([1.0, 1.0, -1.0]))
    # below min with positive grad, above max with negative grad: both flipped
    assert x.grad.tolist() == [-1.0, 1.0, 1.0]
    y = torch.tensor([-30.0, 1.0, 30.0], requires_grad=True)
    penalize_abs_values_gt(y, limit=25.0, penalty=0.5).sum().backward()
    assert y.grad.tolist() == [0.5, 1.0, 1.5]


def test_relative_positions_line_up():
    # Scores that equal the relative offset must come out as key - query positions.
    num_queries, left = 3, 2
    num_keys = num_queries + left
    offsets = torch.arange(-(num_keys - 1), num_queries, dtype=torch.float32)
    scores = offsets.expand(1, 1, num_queries, offsets.numel())
    got = _rel_to_abs(scores, num_keys)[0, 0]
    key_pos = torch.arange(num_keys) - left
    expected = key_pos.unsqueeze(0) - torch.arange(num_queries).unsqueeze(1)
    torch.testing.assert_close(got, expected.float())
    pos = CompactRelPositionalEncoding(16, dropout_rate=0.0)
    emb = pos(torch.zeros(num_queries, 1, 4), left_context_len=left)
    assert emb.shape == (1, num_keys + num_queries - 1, 16)
    # offset 0 sits at index num_keys - 1 and is the same embedding with or without left context
    emb0 = pos(torch.zeros(num_queries, 1, 4))
    torch.testing.assert_close(emb[0, num_keys - 1], emb0[0, num_queries - 1])


def _mini_zipformer() -> torch.nn.Module:
    from icefall_lite.models.zipformer import build_zipformer, preset_params

    encoder_embed, encoder = build_zipformer(preset_params("tiny", **MINI_ZIPFORMER))
    return torch.nn.ModuleDict({"encoder_embed": encoder_embed, "encoder": encoder})


def test_whiten_prob_adapts_and_round_trips_through_the_regulariser_state():
    torch.manual_seed(0)
    correlated = torch.randn(2000, 1).expand(2000, 8) + 0.01 * torch.randn(2000, 8)
    whiten = Whiten(num_groups=1, whitening_limit=2.0, prob=(0.1, 0.7), grad_scale=0.1)
    whiten.prob = 1.0  # make sure it runs on the next batch
    _grad_through(whiten, torch.randn(2000, 8))  # within the limit: checked less often
    assert get_regulariser_state(whiten) == {"prob": 0.1}
    whiten.prob = 1.0
    _grad_through(whiten, correlated)  # violated: checked more often again
    assert get_regulariser_state(whiten) == {"prob": 0.7}

    model = _mini_zipformer()
    state = get_regulariser_state(model)
    assert len(state) >= 5 and all(key.endswith(".prob") for key in state)
    # Every Whiten module gets its own value, as if each had adapted differently.
    mutated = {key: 0.01 * (i + 1) for i, key in enumerate(sorted(state))}
    set_regulariser_state(model, mutated)
    assert get_regulariser_state(model) == mutated

    fresh = _mini_zipformer()
    assert get_regulariser_state(fresh) != mutated
    set_regulariser_state(fresh, mutated)
    assert get_regulariser_state(fresh) == mutated
    whitens = [m for m in fresh.modules() if isinstance(m, Whiten)]
    assert sorted(m.prob for m in whitens) == sorted(mutated.values())
    # Kept out of the model's state_dict (averaging and export rely on its format).
    assert not any(key.endswith("prob") for key in fresh.state_dict())


def test_regulariser_state_of_another_model_is_rejected():
    model = _mini_zipformer()
    before = get_regulariser_state(model)
    wrong = dict(before)
    wrong.pop(sorted(wrong)[0])
    wrong["encoder.no_such_module.prob"] = 0.5
    with pytest.raises(ValueError, match="does not match the model.*no_such_module"):
        set_regulariser_state(model, {key: 0.3 for key in wrong})
    assert get_regulariser_state(model) == before
