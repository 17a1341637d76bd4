"""Every built-in function against fast_rnnt (k2's own code): values and gradients."""

import pytest
import torch

from icefall_lite.rnnt import loss as builtin
from icefall_lite.rnnt import mutual_information as builtin_mi

fast_rnnt = pytest.importorskip("fast_rnnt")

RNNT_TYPES = ["regular", "modified", "constrained"]
BLANK = 0
TOL = {torch.float64: dict(atol=1e-9, rtol=1e-9), torch.float32: dict(atol=2e-4, rtol=1e-4)}


def _batch(seed, dtype, B=5, T=13, S=6, C=9):
    """Random shapes with ragged boundaries; fast_rnnt needs S_b >= 1 and (modified) T_b >= S_b."""
    g = torch.Generator().manual_seed(seed)
    am = torch.randn(B, T, C, dtype=dtype, generator=g).requires_grad_()
    lm = torch.randn(B, S + 1, C, dtype=dtype, generator=g).requires_grad_()
    symbols = torch.randint(1, C, (B, S), generator=g)
    num_symbols = torch.randint(1, S + 1, (B,), generator=g)
    num_frames = torch.maximum(torch.randint(1, T + 1, (B,), generator=g), num_symbols)
    num_symbols[0], num_frames[0] = S, T
    zeros = torch.zeros(B, dtype=torch.int64)
    boundary = torch.stack([zeros, zeros, num_symbols, num_frames], dim=1)
    return am, lm, symbols, boundary


def _grads(loss, inputs):
    return torch.autograd.grad(loss.sum(), inputs)


def _assert_all_close(got, want, dtype):
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("modified", [False, True])
def test_mutual_information(dtype, modified):
    g = torch.Generator().manual_seed(3)
    B, S, T = 4, 5, 9
    px = torch.randn(B, S, T if modified else T + 1, dtype=dtype, generator=g)
    py = torch.randn(B, S + 1, T, dtype=dtype, generator=g)
    boundary = torch.tensor([[0, 0, 5, 9], [0, 0, 3, 7], [1, 2, 4, 8], [0, 1, 2, 4]])
    for bnd in (None, boundary):
        ours, (ox, oy) = builtin_mi.mutual_information_recursion(px, py, bnd, return_grad=True)
        theirs, (tx, ty) = fast_rnnt.mutual_information_recursion(px, py, bnd, return_grad=True)
        _assert_all_close([ours, ox, oy], [theirs, tx, ty], dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("rnnt_type", RNNT_TYPES)
@pytest.mark.parametrize("function", ["rnnt_loss_simple", "rnnt_loss_smoothed"])
def test_simple_and_smoothed(dtype, rnnt_type, function):
    for seed in range(3):
        am, lm, symbols, boundary = _batch(seed, dtype)
        for bnd, delay_penalty in [(None, 0.0), (boundary, 0.0), (boundary, 0.25)]:
            kwargs = dict(
                lm=lm,
                am=am,
                symbols=symbols,
                termination_symbol=BLANK,
                boundary=bnd,
                rnnt_type=rnnt_type,
                delay_penalty=delay_penalty,
                reduction="none",
                return_grad=True,
            )
            if function == "rnnt_loss_smoothed":
                kwargs.update(lm_only_scale=0.25, am_only_scale=0.1)
            ours, (ox, oy) = getattr(builtin, function)(**kwargs)
            theirs, (tx, ty) = getattr(fast_rnnt, function)(**kwargs)
            # fast_rnnt's backward scales its returned px/py grads in place: copy them first.
            tx, ty = tx.clone(), ty.clone()
            _assert_all_close([ours, ox, oy], [theirs, tx, ty], dtype)
            _assert_all_close(_grads(ours, [am, lm]), _grads(theirs, [am, lm]), dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("rnnt_type", RNNT_TYPES)
def test_prune_ranges_pruning_and_pruned_loss(dtype, rnnt_type):
    for seed in range(3):
        am, lm, symbols, boundary = _batch(seed, dtype)
        S = symbols.shape[1]
        _, (px_grad, py_grad) = builtin.rnnt_loss_simple(
            lm, am, symbols, BLANK, boundary, rnnt_type, return_grad=True
        )
        min_range = 1 if rnnt_type == "modified" else 2
        for s_range in range(min_range, S + 3):
            ours = builtin.get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range)
            theirs = fast_rnnt.get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range)
            assert torch.equal(ours, theirs), (seed, s_range)

            our_am, our_lm = builtin.do_rnnt_pruning(am, lm, ours)
            their_am, their_lm = fast_rnnt.do_rnnt_pruning(am, lm, ours)
            assert torch.equal(our_am, their_am) and torch.equal(our_lm, their_lm)

            logits = (our_am + our_lm).detach().requires_grad_()
            for bnd, delay_penalty in [(boundary, 0.0), (boundary, 0.25)]:
                args = (logits, symbols, ours, BLANK, bnd, rnnt_type, delay_penalty, "none")
                ours_loss = builtin.rnnt_loss_pruned(*args)
                theirs_loss = fast_rnnt.rnnt_loss_pruned(*args)
                _assert_all_close([ours_loss], [theirs_loss], dtype)
                _assert_all_close(_grads(ours_loss, [logits]), _grads(theirs_loss, [logits]), dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("rnnt_type", RNNT_TYPES)
def test_full_loss(dtype, rnnt_type):
    for seed in range(2):
        am, lm, symbols, boundary = _batch(seed, dtype)
        joiner_out = am.unsqueeze(2) + lm.unsqueeze(1)
        logits = (joiner_out + torch.randn_like(joiner_out)).detach().requires_grad_()
        for bnd, delay_penalty, reduction in [
            (None, 0.0, "none"),
            (boundary, 0.0, "mean"),
            (boundary, 0.25, "sum"),
        ]:
            args = (logits, symbols, BLANK, bnd, rnnt_type, delay_penalty, reduction)
            ours = builtin.rnnt_loss(*args)
            theirs = fast_rnnt.rnnt_loss(*args)
            _assert_all_close([ours], [theirs], dtype)
            _assert_all_close(_grads(ours, [logits]), _grads(theirs, [logits]), dtype)
