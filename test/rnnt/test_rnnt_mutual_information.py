"""The built-in mutual-information recursion against a cell-by-cell reference."""

import pytest
import torch
from rnnt_reference import lattice_score_by_cells

from icefall_lite.rnnt.mutual_information import mutual_information_recursion


def _random_lattice(B: int, S: int, T: int, modified: bool, dtype=torch.float64):
    px = torch.randn(B, S, T if modified else T + 1, dtype=dtype, requires_grad=True)
    py = torch.randn(B, S + 1, T, dtype=dtype, requires_grad=True)
    return px, py


def _random_boundary(B: int, S: int, T: int, modified: bool, with_begin: bool) -> torch.Tensor:
    s_begin = (
        torch.randint(0, 2, (B,)).clamp(max=S) if with_begin else torch.zeros(B, dtype=torch.int64)
    )
    t_begin = (
        torch.randint(0, 2, (B,)).clamp(max=T) if with_begin else torch.zeros(B, dtype=torch.int64)
    )
    s_end = torch.maximum(s_begin, torch.randint(0, S + 1, (B,)))
    t_end = torch.maximum(t_begin, torch.randint(0, T + 1, (B,)))
    if modified:  # keep a path possible so the score is finite
        t_end = torch.maximum(t_end, (t_begin + s_end - s_begin).clamp(max=T))
        s_end = torch.minimum(s_end, s_begin + t_end - t_begin)
    boundary = torch.stack([s_begin, t_begin, s_end, t_end], dim=1)
    boundary[0] = torch.tensor([0, 0, S, T])  # one unpadded sequence
    return boundary


def _reference(px, py, boundary):
    B, S, _ = px.shape
    T = py.shape[2]
    rows = boundary.tolist() if boundary is not None else [[0, 0, S, T]] * B
    return torch.stack([lattice_score_by_cells(px[b], py[b], *rows[b]) for b in range(B)])


@pytest.mark.parametrize("modified", [False, True])
@pytest.mark.parametrize("shape", [(3, 4, 6), (2, 0, 3), (2, 1, 1), (3, 5, 5), (2, 3, 1)])
@pytest.mark.parametrize("boundary_kind", [None, "ends", "begins_and_ends"])
def test_matches_cell_by_cell_reference(modified, shape, boundary_kind):
    B, S, T = shape
    if modified and S > T:
        pytest.skip("modified lattice with S > T has no path")
    px, py = _random_lattice(B, S, T, modified)
    boundary = None
    if boundary_kind is not None:
        boundary = _random_boundary(B, S, T, modified, boundary_kind == "begins_and_ends")
    scores, (px_occ, py_occ) = mutual_information_recursion(px, py, boundary, return_grad=True)
    expected = _reference(px, py, boundary)
    torch.testing.assert_close(scores, expected)

    grads = torch.autograd.grad(scores.sum(), [px, py])
    expected_grads = torch.autograd.grad(expected.sum(), [px, py])
    for got, occupancy, want in zip(grads, (px_occ, py_occ), expected_grads):
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(occupancy, want)


@pytest.mark.parametrize("modified", [False, True])
def test_gradcheck_float64(modified):
    px, py = _random_lattice(2, 3, 4, modified)
    boundary = torch.tensor([[0, 0, 3, 4], [0, 0, 2, 3]])
    assert torch.autograd.gradcheck(
        lambda a, b: mutual_information_recursion(a, b, boundary), (px, py)
    )
    assert torch.autograd.gradcheck(lambda a, b: mutual_information_recursion(a, b), (px, py))


def test_backward_scales_by_output_gradient():
    px, py = _random_lattice(3, 2, 3, modified=False)
    scores = mutual_information_recursion(px, py)
    weights = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    (px_grad,) = torch.autograd.grad((scores * weights).sum(), [px])
    _, (px_occ, _) = mutual_information_recursion(px.detach(), py.detach(), return_grad=True)
    torch.testing.assert_close(px_grad, px_occ * weights.view(3, 1, 1))


def test_occupancies_are_probabilities():
    """Every path leaves each anti-diagonal once, so the occupancies leaving one sum to 1."""
    B, S, T = 2, 4, 5
    px, py = _random_lattice(B, S, T, modified=False)
    _, (px_occ, py_occ) = mutual_information_recursion(px, py, return_grad=True)
    assert (px_occ >= 0).all() and (py_occ >= 0).all()
    s = torch.arange(S + 1).view(S + 1, 1)
    t = torch.arange(T + 1).view(1, T + 1)
    for k in range(S + T):
        leaving = (px_occ * ((s[:S] + t) == k)).sum(dim=(1, 2)) + (
            py_occ * ((s + t[:, :T]) == k)
        ).sum(dim=(1, 2))
        torch.testing.assert_close(leaving, torch.ones(B, dtype=torch.float64))


def test_float32_matches_float64():
    px, py = _random_lattice(4, 6, 9, modified=False)
    s64, (gx64, gy64) = mutual_information_recursion(px.detach(), py.detach(), return_grad=True)
    s32, (gx32, gy32) = mutual_information_recursion(
        px.detach().float(), py.detach().float(), return_grad=True
    )
    assert s32.dtype == torch.float32 and gx32.dtype == torch.float32
    torch.testing.assert_close(s32.double(), s64, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(gx32.double(), gx64, atol=1e-5, rtol=1e-4)


def test_unreachable_end_gives_minus_inf_and_zero_gradient():
    px, py = _random_lattice(1, 3, 2, modified=True)  # 3 symbols cannot fit in 2 frames
    scores, (px_occ, py_occ) = mutual_information_recursion(px, py, return_grad=True)
    assert scores.item() == float("-inf")
    assert (px_occ == 0).all() and (py_occ == 0).all()


def test_padding_is_never_read():
    px, py = _random_lattice(2, 3, 4, modified=False)
    boundary = torch.tensor([[0, 0, 3, 4], [0, 0, 1, 2]])
    scores = mutual_information_recursion(px, py, boundary)
    px2, py2 = px.detach().clone(), py.detach().clone()
    px2[1, 1:, :] = float("nan")
    px2[1, :, 3:] = float("nan")
    py2[1, 2:, :] = float("nan")
    py2[1, :, 2:] = float("nan")
    scores2, (gx, gy) = mutual_information_recursion(px2, py2, boundary, return_grad=True)
    torch.testing.assert_close(scores2, scores.detach())
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all()


@pytest.mark.parametrize(
    "px_shape, py_shape, boundary, message",
    [
        ((2, 3, 5), (2, 4, 3), None, "expected px"),
        ((2, 3, 4), (2, 3, 3), None, "expected px"),
        ((2, 3, 4), (2, 4, 3), torch.tensor([[0, 0, 4, 3], [0, 0, 1, 1]]), "boundary\\[0\\]"),
        ((2, 3, 4), (2, 4, 3), torch.tensor([[0, 0, 3, 3]]), "shape"),
    ],
)
def test_bad_inputs_raise_clear_errors(px_shape, py_shape, boundary, message):
    with pytest.raises(ValueError, match=message):
        mutual_information_recursion(torch.randn(px_shape), torch.randn(py_shape), boundary)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("modified", [False, True])
def test_cuda_matches_cpu(modified):
    px, py = _random_lattice(3, 5, 7, modified, dtype=torch.float32)
    boundary = torch.tensor([[0, 0, 5, 7], [0, 0, 3, 6], [0, 0, 2, 5]])
    cpu = mutual_information_recursion(px.detach(), py.detach(), boundary, return_grad=True)
    gpu = mutual_information_recursion(
        px.detach().cuda(), py.detach().cuda(), boundary.cuda(), return_grad=True
    )
    torch.testing.assert_close(gpu[0].cpu(), cpu[0])
    torch.testing.assert_close(gpu[1][0].cpu(), cpu[1][0])
    torch.testing.assert_close(gpu[1][1].cpu(), cpu[1][1])
