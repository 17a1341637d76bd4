"""Built-in RNN-T losses against explicit sums over alignments, and against each other."""

import pytest
import torch
from rnnt_reference import alignment_log_likelihood

from icefall_lite.rnnt import loss as rnnt

RNNT_TYPES = ["regular", "modified", "constrained"]
BLANK = 0


def _batch(B, T, S, C, dtype=torch.float64, ragged=True, min_frames=None):
    """Random lm/am/symbols and a boundary whose first row is unpadded."""
    am = torch.randn(B, T, C, dtype=dtype, requires_grad=True)
    lm = torch.randn(B, S + 1, C, dtype=dtype, requires_grad=True)
    symbols = torch.randint(1, C, (B, S))
    num_symbols = torch.randint(0, S + 1, (B,)) if ragged else torch.full((B,), S)
    num_frames = torch.randint(1, T + 1, (B,)) if ragged else torch.full((B,), T)
    if min_frames == "symbols":  # modified/constrained need T_b >= S_b
        num_frames = torch.maximum(num_frames, num_symbols).clamp(max=T)
        num_symbols = torch.minimum(num_symbols, num_frames)
    num_symbols[0], num_frames[0] = S, T
    boundary = torch.stack(
        [
            torch.zeros(B, dtype=torch.int64),
            torch.zeros(B, dtype=torch.int64),
            num_symbols,
            num_frames,
        ],
        dim=1,
    )
    return am, lm, symbols, boundary


def _brute_force(logits, symbols, boundary, rnnt_type, delay_penalty=0.0):
    """Per-sequence negated log-likelihood on the unpadded part of each sequence."""
    losses = []
    for b, (_, _, S_b, T_b) in enumerate(boundary.tolist()):
        losses.append(
            -alignment_log_likelihood(
                logits[b, :T_b, : S_b + 1],
                symbols[b, :S_b].tolist(),
                BLANK,
                rnnt_type,
                delay_penalty,
            )
        )
    return torch.stack(losses)


@pytest.mark.parametrize("rnnt_type", RNNT_TYPES)
@pytest.mark.parametrize("delay_penalty", [0.0, 0.3])
def test_full_loss_matches_sum_over_alignments(rnnt_type, delay_penalty):
    am, lm, symbols, boundary = _batch(4, 5, 3, 4, min_frames="symbols")
    joiner_out = am.unsqueeze(2) + lm.unsqueeze(1)
    # A non-additive joiner.
    logits = (joiner_out + 0.5 * torch.randn_like(joiner_out)).detach().requires_grad_()
    loss = rnnt.rnnt_loss(
        logits, symbols, BLANK, boundary, rnnt_type, delay_penalty, reduction="none"
    )
    expected = _brute_force(logits, symbols, boundary, rnnt_type, delay_penalty)
    torch.testing.assert_close(loss, expected)
    grad = torch.autograd.grad(loss.sum(), logits)[0]
    expected_grad = torch.autograd.grad(expected.sum(), logits)[0]
    torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize("rnnt_type", RNNT_TYPES)
def test_simple_loss_is_full_loss_of_additive_joiner(rnnt_type):
    am, lm, symbols, boundary = _batch(3, 6, 4, 5, min_frames="symbols")
    simple = rnnt.rnnt_loss_simple(lm, am, symbols, BLANK, boundary, rnnt_type, reduction="none")
    full = rnnt.rnnt_loss(
        am.unsqueeze(2) + lm.unsqueeze(1), symbols, BLANK, boundary, rnnt_type, reduction="none"
    )
    torch.testing.assert_close(simple, full)
    grads = torch.autograd.grad(simple.sum(), [am, lm])
    expected = torch.autograd.grad(full.sum(), [am, lm])
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("rnnt_type", RNNT_TYPES)
def test_pruned_loss_with_full_range_equals_full_loss(rnnt_type):
    B, T, S, C = 3, 7, 4, 6
    am, lm, symbols, boundary = _batch(B, T, S, C, min_frames="symbols")
    _, (px_grad, py_grad) = rnnt.rnnt_loss_simple(
        lm, am, symbols, BLANK, boundary, rnnt_type, return_grad=True
    )
    ranges = rnnt.get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range=S + 1)
    assert ranges.shape == (B, T, S + 1)
    am_pruned, lm_pruned = rnnt.do_rnnt_pruning(am, lm, ranges)
    pruned = rnnt.rnnt_loss_pruned(
        am_pruned + lm_pruned, symbols, ranges, BLANK, boundary, rnnt_type, reduction="none"
    )
    full = rnnt.rnnt_loss(
        am.unsqueeze(2) + lm.unsqueeze(1), symbols, BLANK, boundary, rnnt_type, reduction="none"
    )
    torch.testing.assert_close(pruned, full)
    grads = torch.autograd.grad(pruned.sum(), [am, lm])
    expected = torch.autograd.grad(full.sum(), [am, lm])
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("rnnt_type", RNNT_TYPES)
def test_narrow_pruning_bounds_full_loss_and_keeps_a_path(rnnt_type):
    """Pruning removes paths, so the pruned loss is >= the full one, but stays finite."""
    B, T, S, C = 4, 12, 6, 8
    am, lm, symbols, boundary = _batch(B, T, S, C, min_frames="symbols")
    _, (px_grad, py_grad) = rnnt.rnnt_loss_simple(
        lm, am, symbols, BLANK, boundary, rnnt_type, return_grad=True
    )
    ranges = rnnt.get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range=2)
    starts = ranges[:, :, 0]
    assert (starts[:, 1:] >= starts[:, :-1]).all(), "windows must move forward"
    assert (starts[:, 0] == 0).all()
    for b, (_, _, S_b, T_b) in enumerate(boundary.tolist()):
        assert starts[b, T_b - 1] + 1 >= S_b, "the last frame must see the last symbol"
    am_pruned, lm_pruned = rnnt.do_rnnt_pruning(am, lm, ranges)
    pruned = rnnt.rnnt_loss_pruned(
        am_pruned + lm_pruned, symbols, ranges, BLANK, boundary, rnnt_type, reduction="none"
    )
    full = rnnt.rnnt_loss(
        am.unsqueeze(2) + lm.unsqueeze(1), symbols, BLANK, boundary, rnnt_type, reduction="none"
    )
    assert torch.isfinite(pruned).all()
    assert (pruned >= full - 1e-9).all()


@pytest.mark.parametrize("rnnt_type", RNNT_TYPES)
def test_narrow_pruned_loss_is_the_sum_over_alignments_inside_the_band(rnnt_type):
    """The pruned loss computed independently: brute force over the alignments that read the
    joiner only at the cells ``ranges`` selected (tiny shapes)."""
    torch.manual_seed(3)
    B, T, S, C = 3, 6, 4, 6
    am, lm, symbols, boundary = _batch(B, T, S, C, min_frames="symbols")
    _, (px_grad, py_grad) = rnnt.rnnt_loss_simple(
        lm, am, symbols, BLANK, boundary, rnnt_type, return_grad=True
    )
    ranges = rnnt.get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range=2)
    am_pruned, lm_pruned = rnnt.do_rnnt_pruning(am, lm, ranges)
    pruned = rnnt.rnnt_loss_pruned(
        am_pruned + lm_pruned, symbols, ranges, BLANK, boundary, rnnt_type, reduction="none"
    )
    logits = am.unsqueeze(2) + lm.unsqueeze(1)
    expected, full = [], []
    for b, (_, _, S_b, T_b) in enumerate(boundary.tolist()):
        allowed = torch.zeros(T_b, S_b + 1, dtype=torch.bool)
        for t in range(T_b):
            allowed[t, ranges[b, t].clamp(max=S_b)] = True
        args = (logits[b, :T_b, : S_b + 1], symbols[b, :S_b].tolist(), BLANK, rnnt_type)
        expected.append(-alignment_log_likelihood(*args, allowed=allowed))
        full.append(-alignment_log_likelihood(*args))
    expected, full = torch.stack(expected), torch.stack(full)
    torch.testing.assert_close(pruned, expected)
    assert (expected > full + 1e-3).any(), "degenerate case: the band removed no path"
    grads = torch.autograd.grad(pruned.sum(), [am, lm])
    expected_grads = torch.autograd.grad(expected.sum(), [am, lm])
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("rnnt_type", RNNT_TYPES)
def test_padded_batch_equals_sequences_alone(rnnt_type):
    am, lm, symbols, boundary = _batch(4, 8, 5, 6, min_frames="symbols")
    batched = rnnt.rnnt_loss_smoothed(
        lm, am, symbols, BLANK, 0.0, 0.0, boundary, rnnt_type, delay_penalty=0.1, reduction="none"
    )
    for b, (_, _, S_b, T_b) in enumerate(boundary.tolist()):
        alone = rnnt.rnnt_loss_simple(
            lm[b : b + 1, : S_b + 1],
            am[b : b + 1, :T_b],
            symbols[b : b + 1, :S_b],
            BLANK,
            rnnt_type=rnnt_type,
            delay_penalty=0.1,
            reduction="none",
        )
        torch.testing.assert_close(batched[b : b + 1], alone)


def test_smoothed_loss_interpolates_lm_and_am_only_models():
    am, lm, symbols, boundary = _batch(2, 5, 3, 4, ragged=False)
    plain = rnnt.rnnt_loss_smoothed(lm, am, symbols, BLANK, 0.0, 0.0, reduction="none")
    simple = rnnt.rnnt_loss_simple(lm, am, symbols, BLANK, reduction="none")
    torch.testing.assert_close(plain, simple)
    # With lm_only_scale = 1 the score of a path is the LM log-prob of its tokens only.
    lm_only = rnnt.rnnt_loss_smoothed(lm, am, symbols, BLANK, 1.0, 0.0, reduction="none")
    lm_logprobs = lm.log_softmax(-1)
    T = am.shape[1]
    expected = []
    for b in range(2):
        logits = lm_logprobs[b].unsqueeze(0).expand(T, -1, -1)
        expected.append(-alignment_log_likelihood(logits, symbols[b].tolist(), BLANK, "regular"))
    torch.testing.assert_close(lm_only, torch.stack(expected))


def test_reductions():
    am, lm, symbols, boundary = _batch(3, 6, 3, 5)
    none = rnnt.rnnt_loss_simple(lm, am, symbols, BLANK, boundary, reduction="none")
    assert none.shape == (3,)
    total = rnnt.rnnt_loss_simple(lm, am, symbols, BLANK, boundary, reduction="sum")
    mean = rnnt.rnnt_loss_simple(lm, am, symbols, BLANK, boundary, reduction="mean")
    torch.testing.assert_close(total, none.sum())
    torch.testing.assert_close(mean, none.mean())
    with pytest.raises(ValueError, match="reduction"):
        rnnt.rnnt_loss_simple(lm, am, symbols, BLANK, boundary, reduction="avg")


def test_delay_penalty_prefers_early_emission():
    """The penalty shifts occupancy towards earlier frames (k2's delay-penalty semantics)."""
    am, lm, symbols, _ = _batch(2, 10, 3, 5, ragged=False)
    T = am.shape[1]

    def mean_emission_frame(delay_penalty):
        _, (px_grad, _) = rnnt.rnnt_loss_simple(
            lm, am, symbols, BLANK, delay_penalty=delay_penalty, return_grad=True
        )
        frames = torch.arange(T + 1, dtype=px_grad.dtype)
        return (px_grad * frames).sum() / px_grad.sum()

    assert mean_emission_frame(1.0) < mean_emission_frame(0.0)


@pytest.mark.parametrize("rnnt_type", RNNT_TYPES)
def test_empty_transcript(rnnt_type):
    T, C = 4, 5
    logits = torch.randn(1, T, 1, C, dtype=torch.float64, requires_grad=True)
    symbols = torch.zeros(1, 0, dtype=torch.int64)
    loss = rnnt.rnnt_loss(logits, symbols, BLANK, rnnt_type=rnnt_type, reduction="sum")
    expected = -logits.log_softmax(-1)[0, :, 0, BLANK].sum()  # all blanks
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("rnnt_type", RNNT_TYPES)
def test_single_frame(rnnt_type):
    S = 1 if rnnt_type != "regular" else 3
    am, lm, symbols, boundary = _batch(1, 1, S, 5, ragged=False)
    logits = am.unsqueeze(2) + lm.unsqueeze(1)
    loss = rnnt.rnnt_loss(logits, symbols, BLANK, rnnt_type=rnnt_type, reduction="none")
    torch.testing.assert_close(loss, _brute_force(logits, symbols, boundary, rnnt_type))


@pytest.mark.parametrize("rnnt_type", ["modified", "constrained"])
def test_more_symbols_than_frames_is_an_error(rnnt_type):
    am, lm, symbols, boundary = _batch(2, 4, 3, 5, ragged=False)
    boundary[1, 3] = 2  # second sequence: 3 symbols, 2 frames
    with pytest.raises(ValueError, match="sequence 1 has S=3 symbols for T=2 frames"):
        rnnt.rnnt_loss_simple(lm, am, symbols, BLANK, boundary, rnnt_type)
    am, lm, symbols, _ = _batch(1, 2, 3, 5, ragged=False)
    with pytest.raises(ValueError, match="S=3 symbols for T=2 frames"):
        rnnt.rnnt_loss(am.unsqueeze(2) + lm.unsqueeze(1), symbols, BLANK, rnnt_type=rnnt_type)
    # The regular transducer can emit many symbols on one frame.
    loss = rnnt.rnnt_loss(am.unsqueeze(2) + lm.unsqueeze(1), symbols, BLANK, rnnt_type="regular")
    assert torch.isfinite(loss)


def test_constrained_pruning_needs_two_positions():
    am, lm, symbols, boundary = _batch(1, 5, 3, 5, ragged=False)
    ranges = torch.arange(5).clamp(max=3).view(1, 5, 1)
    with pytest.raises(ValueError, match="s_range >= 2"):
        rnnt.rnnt_loss_pruned(
            torch.randn(1, 5, 1, 5), symbols, ranges, BLANK, boundary, "constrained"
        )


def test_bad_rnnt_type_and_shapes():
    am, lm, symbols, boundary = _batch(2, 4, 3, 5)
    with pytest.raises(ValueError, match="rnnt_type"):
        rnnt.rnnt_loss_simple(lm, am, symbols, BLANK, rnnt_type="hat")
    with pytest.raises(ValueError, match="symbols must have shape"):
        rnnt.rnnt_loss_simple(lm, am, symbols[:, :2], BLANK)
