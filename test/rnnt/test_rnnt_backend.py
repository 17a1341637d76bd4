"""Backend selection: flag, environment variable, automatic choice, and dispatch."""

import argparse

import pytest
import torch
from rnnt_reference import alignment_log_likelihood, lattice_score_by_cells

from icefall_lite import rnnt
from icefall_lite.rnnt import backend
from icefall_lite.rnnt import loss as builtin_loss


@pytest.fixture(autouse=True)
def _restore_backend(monkeypatch):
    monkeypatch.delenv(rnnt.ENV_VAR, raising=False)
    yield
    rnnt.set_backend("auto")


def _importable(name: str) -> bool:
    return backend._load(name) is not None


def test_auto_picks_fastest_importable_per_device(monkeypatch):
    # CPU: the built-in loss measured fastest (tools/bench/rnnt_loss.py), so auto takes it even
    # when compiled backends import.
    assert rnnt.get_backend() == "builtin"
    # CUDA: compiled kernels first, whichever imports and was built with CUDA.
    monkeypatch.setattr(backend, "_supports_device", lambda name, device: True)
    expected = next(n for n in ("k2", "fast_rnnt", "builtin") if _importable(n))
    assert rnnt.resolve_backend(torch.device("cuda")) == expected


def test_set_backend_and_environment_variable(monkeypatch):
    rnnt.set_backend("builtin")
    assert rnnt.get_backend() == "builtin"
    monkeypatch.setenv(rnnt.ENV_VAR, "fast_rnnt")
    assert rnnt.get_backend() == "builtin", "an explicit choice beats the environment"
    rnnt.set_backend("auto")
    if _importable("fast_rnnt"):
        assert rnnt.get_backend() == "fast_rnnt", "auto defers to the environment"
    monkeypatch.setenv(rnnt.ENV_VAR, "Builtin ")
    assert rnnt.get_backend() == "builtin"


def test_bad_names_raise(monkeypatch):
    with pytest.raises(ValueError, match="unknown RNN-T backend 'cudnn'"):
        rnnt.set_backend("cudnn")
    monkeypatch.setenv(rnnt.ENV_VAR, "warp")
    with pytest.raises(ValueError, match=rnnt.ENV_VAR):
        rnnt.get_backend()


def test_missing_backend_raises_when_named(monkeypatch):
    monkeypatch.setitem(backend._modules, "k2", None)  # pretend k2 failed to import
    with pytest.raises(ImportError, match="'k2'"):
        rnnt.set_backend("k2")
    monkeypatch.setenv(rnnt.ENV_VAR, "k2")
    with pytest.raises(ImportError, match="'k2'"):
        rnnt.get_backend()


def test_cuda_falls_back_to_builtin_when_backend_lacks_cuda(monkeypatch):
    class NoCuda:
        @staticmethod
        def with_cuda():
            return False

    monkeypatch.setitem(backend._modules, "k2", None)
    monkeypatch.setitem(backend._modules, "fast_rnnt", NoCuda)
    assert rnnt.resolve_backend(torch.device("cuda")) == "builtin"
    rnnt.set_backend("fast_rnnt")
    assert rnnt.resolve_backend(torch.device("cpu")) == "fast_rnnt"


def test_argument_helper():
    parser = argparse.ArgumentParser()
    rnnt.add_rnnt_backend_argument(parser)
    assert parser.parse_args([]).rnnt_backend == "auto"
    assert parser.parse_args(["--rnnt-backend", "builtin"]).rnnt_backend == "builtin"
    with pytest.raises(SystemExit):
        parser.parse_args(["--rnnt-backend", "nope"])


def test_dispatch_reaches_the_chosen_backend(monkeypatch):
    calls = []

    class Recorder:
        @staticmethod
        def rnnt_loss_simple(**kwargs):
            calls.append(kwargs)
            return torch.zeros(())

    monkeypatch.setitem(backend._modules, "k2", Recorder)
    rnnt.set_backend("k2")
    am, lm = torch.randn(1, 3, 4), torch.randn(1, 2, 4)
    rnnt.rnnt_loss_simple(lm, am, torch.tensor([[1]]), 0, rnnt_type="modified", delay_penalty=0.5)
    assert calls and calls[0]["rnnt_type"] == "modified" and calls[0]["delay_penalty"] == 0.5


@pytest.mark.parametrize("name", ["builtin", "fast_rnnt"])
def test_public_api_runs_the_whole_pruned_recipe(name):
    """Every public function, through the chosen backend, against the slow references: sums
    over alignments (simple, full and pruned loss) and the cell-by-cell recursion."""
    if not _importable(name):
        pytest.skip(f"{name} not importable")
    rnnt.set_backend(name)
    B, T, S, C = 2, 6, 3, 5
    am = torch.randn(B, T, C, dtype=torch.float64, requires_grad=True)
    lm = torch.randn(B, S + 1, C, dtype=torch.float64, requires_grad=True)
    symbols = torch.randint(1, C, (B, S))
    boundary = torch.tensor([[0, 0, 3, 6], [0, 0, 2, 5]])
    logits = am.unsqueeze(2) + lm.unsqueeze(1)

    def reference(allowed=None):
        return torch.stack(
            [
                -alignment_log_likelihood(
                    logits[b, :T_b, : S_b + 1],
                    symbols[b, :S_b].tolist(),
                    0,
                    "regular",
                    allowed=None if allowed is None else allowed[b],
                )
                for b, (_, _, S_b, T_b) in enumerate(boundary.tolist())
            ]
        )

    simple, (px_grad, py_grad) = rnnt.rnnt_loss_smoothed(
        lm, am, symbols, 0, 0.0, 0.0, boundary, reduction="none", return_grad=True
    )
    torch.testing.assert_close(simple, reference())
    smoothed = rnnt.rnnt_loss_smoothed(lm, am, symbols, 0, 0.25, 0.1, boundary, reduction="none")
    expected = builtin_loss.rnnt_loss_smoothed(
        lm, am, symbols, 0, 0.25, 0.1, boundary, reduction="none"
    )
    torch.testing.assert_close(smoothed, expected)
    ranges = rnnt.get_rnnt_prune_ranges(px_grad, py_grad, boundary, 2)
    am_pruned, lm_pruned = rnnt.do_rnnt_pruning(am, lm, ranges)
    pruned = rnnt.rnnt_loss_pruned(
        am_pruned + lm_pruned, symbols, ranges, 0, boundary, reduction="none"
    )
    allowed = []
    for b, (_, _, S_b, T_b) in enumerate(boundary.tolist()):
        cells = torch.zeros(T_b, S_b + 1, dtype=torch.bool)
        for t in range(T_b):
            cells[t, ranges[b, t].clamp(max=S_b)] = True
        allowed.append(cells)
    torch.testing.assert_close(pruned, reference(allowed))
    (simple.sum() + pruned.sum()).backward()
    assert torch.isfinite(am.grad).all() and torch.isfinite(lm.grad).all()
    full = rnnt.rnnt_loss(logits, symbols, 0, boundary, reduction="none")
    torch.testing.assert_close(full, reference())
    px = torch.randn(B, S, T + 1, dtype=torch.float64)
    py = torch.randn(B, S + 1, T, dtype=torch.float64)
    expected = torch.stack(
        [
            lattice_score_by_cells(px[b], py[b], 0, 0, S_b, T_b)
            for b, (_, _, S_b, T_b) in enumerate(boundary.tolist())
        ]
    )
    torch.testing.assert_close(rnnt.mutual_information_recursion(px, py, boundary), expected)


@pytest.mark.parametrize("name", ["builtin", "fast_rnnt"])
def test_empty_transcript_in_batch_works_on_every_backend(name):
    """fast_rnnt rejects S_b = 0; such batches must still work when it is the backend."""
    if not _importable(name):
        pytest.skip(f"{name} not importable")
    rnnt.set_backend(name)
    B, T, S, C = 2, 6, 3, 5
    am = torch.randn(B, T, C, dtype=torch.float64, requires_grad=True)
    lm = torch.randn(B, S + 1, C, dtype=torch.float64, requires_grad=True)
    symbols = torch.randint(1, C, (B, S))
    boundary = torch.tensor([[0, 0, 3, 6], [0, 0, 0, 4]])
    loss, (px_grad, py_grad) = rnnt.rnnt_loss_simple(
        lm, am, symbols, 0, boundary, reduction="none", return_grad=True
    )
    blank_only = -(am[1, :4] + lm[1, 0]).log_softmax(-1)[:, 0].sum()
    torch.testing.assert_close(loss[1], blank_only)
    ranges = rnnt.get_rnnt_prune_ranges(px_grad, py_grad, boundary, 2)
    am_pruned, lm_pruned = rnnt.do_rnnt_pruning(am, lm, ranges)
    pruned = rnnt.rnnt_loss_pruned(
        am_pruned + lm_pruned, symbols, ranges, 0, boundary, reduction="none"
    )
    torch.testing.assert_close(pruned[1], blank_only)
