"""The hand-written backward passes in zipformer/scaling.py against their plain-autograd
references: gradient checks on tiny shapes, and a whole-model training step whose loss and
gradients must match the reference mode's."""

import random

import pytest
import torch
from torch import nn

from icefall_lite.models import add_model_arguments, build_model
from icefall_lite.models.zipformer import scaling
from icefall_lite.models.zipformer.scaling import (
    Balancer,
    SwooshL,
    SwooshR,
    depthwise_conv2d,
    reference_implementations,
    set_batch_count,
    swoosh_l,
    swoosh_r,
    using_reference_implementations,
)
from icefall_lite.utils import AttributeDict


@pytest.mark.parametrize("offset, intercept", [scaling._SWOOSH_L, scaling._SWOOSH_R])
def test_swoosh_function_passes_gradcheck(offset, intercept):
    x = (torch.randn(4, 7, dtype=torch.float64) * 6.0).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda t: scaling._SwooshFunction.apply(t, offset, intercept), (x,)
    )


@pytest.mark.parametrize("module, formula", [(SwooshL(), swoosh_l), (SwooshR(), swoosh_r)])
def test_swoosh_module_values_and_grads_match_the_formula(module, formula):
    x = torch.randn(3, 5, 64) * 8.0
    fast_x = x.clone().requires_grad_(True)
    ref_x = x.clone().requires_grad_(True)
    fast_y = module(fast_x)
    ref_y = formula(ref_x)
    torch.testing.assert_close(fast_y, ref_y, rtol=1e-6, atol=1e-6)
    grad = torch.randn_like(x)
    fast_y.backward(grad)
    ref_y.backward(grad)
    torch.testing.assert_close(fast_x.grad, ref_x.grad, rtol=1e-6, atol=1e-6)


def _out_of_range_activations() -> torch.Tensor:
    # Channels with means from -3 to 3 and scales from 0.01 to 10: many violate the limits.
    scales = torch.linspace(0.01, 10.0, 16)
    means = torch.linspace(-3.0, 3.0, 16)
    return torch.randn(40, 3, 16) * scales + means


@pytest.mark.parametrize("channel_dim", [0, 1, 2])
def test_balancer_closed_form_backward_matches_autograd(channel_dim):
    x = _out_of_range_activations().movedim(2, channel_dim).contiguous()
    grad = torch.randn_like(x)
    config = (-0.5, 0.5, 0.3, 3.0, 0.04, channel_dim)
    reference = scaling._balancer_backward_reference(x, grad, *config)
    fast = scaling._balancer_backward(x, grad, *config)
    assert (reference - grad).abs().max() > 1e-2  # the penalty is active
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-4)


def test_balancer_module_uses_the_selected_backward():
    balancer = Balancer(16, channel_dim=-1, min_abs=0.5, max_abs=2.0, prob=1.0)
    x = _out_of_range_activations()
    grads = []
    for reference in (False, True):
        x_leaf = x.clone().requires_grad_(True)
        with reference_implementations(reference):
            y = balancer(x_leaf)
            y.backward(torch.ones_like(x))
        grads.append(x_leaf.grad)
    assert not torch.equal(grads[0], torch.ones_like(x))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)


def test_depthwise_conv2d_passes_gradcheck():
    conv = nn.Conv2d(5, 5, kernel_size=(7, 5), padding=(3, 2), groups=5).double()
    x = torch.randn(2, 5, 9, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t, w, b: scaling._DepthwiseConv2dFunction.apply(t, w, b),
        (x, conv.weight, conv.bias),
    )


def test_depthwise_conv2d_matches_the_module():
    conv = nn.Conv2d(8, 8, kernel_size=7, padding=3, groups=8)
    x = torch.randn(3, 8, 20, 11)
    grad = torch.randn(3, 8, 20, 11)
    outputs, grads = [], []
    for reference in (False, True):
        conv.zero_grad()
        x_leaf = x.clone().requires_grad_(True)
        with reference_implementations(reference):
            y = depthwise_conv2d(x_leaf, conv)
        y.backward(grad)
        outputs.append(y)
        grads.append((x_leaf.grad, conv.weight.grad.clone(), conv.bias.grad.clone()))
    assert torch.equal(outputs[0], outputs[1])
    for fast, ref in zip(*grads):
        torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4)


def test_reference_switch_nests_and_restores():
    assert not using_reference_implementations()
    with reference_implementations():
        assert using_reference_implementations()
        with reference_implementations(False):
            assert not using_reference_implementations()
        assert using_reference_implementations()
    assert not using_reference_implementations()


def _tiny_model() -> nn.Module:
    import argparse

    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    params = AttributeDict(vars(parser.parse_args(["--model-size", "tiny"])))
    params.update(decoder_dim=32, joiner_dim=32, vocab_size=50, blank_id=0, feature_dim=80)
    return build_model(params)


def test_training_step_matches_reference_mode():
    """Same seeds, same random draws: loss equal, every gradient close, in both modes."""
    torch.manual_seed(0)
    model = _tiny_model()
    model.train()
    set_batch_count(model, 0.0)  # regulariser probabilities at their highest
    x = torch.randn(2, 120, 80)
    x_lens = torch.tensor([120, 100])
    tokens = [[3, 4, 5, 6], [7, 8, 9]]
    results = []
    for reference in (False, True):
        model.zero_grad()
        random.seed(1)
        torch.manual_seed(1)
        with reference_implementations(reference):
            simple, pruned, _ = model(x, x_lens, tokens, prune_range=3)
            (0.5 * simple + pruned).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((simple.item(), pruned.item(), grads))
    (fast_simple, fast_pruned, fast_grads), (ref_simple, ref_pruned, ref_grads) = results
    assert fast_simple == pytest.approx(ref_simple, rel=1e-5)
    assert fast_pruned == pytest.approx(ref_pruned, rel=1e-5)
    assert fast_grads.keys() == ref_grads.keys()
    assert "encoder_embed.convnext.depthwise_conv.weight" in fast_grads
    for name, ref in ref_grads.items():
        # Relative to the tensor's largest gradient: float rounding differs between the paths,
        # and single elements of nearly cancelling sums can differ a lot relatively.
        error = (fast_grads[name] - ref).abs().max().item()
        assert error <= 1e-3 * ref.abs().max().item() + 1e-6, (name, error)


def test_training_step_under_bf16_autocast_on_cpu():
    """The fast paths must fall back or cope when autocast mixes dtypes."""
    torch.manual_seed(0)
    model = _tiny_model()
    model.train()
    set_batch_count(model, 0.0)
    x = torch.randn(2, 120, 80)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        simple, pruned, _ = model(x, torch.tensor([120, 100]), [[3, 4, 5], [6, 7]], prune_range=3)
    (simple + pruned).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
