"""RNN-T losses with k2's API (pruned RNN-T, Kuang et al. 2022, arXiv 2206.13236).

Each public function here has k2's name, arguments and semantics and forwards the call to the
selected backend (see :mod:`icefall_lite.rnnt.backend`): k2 or fast_rnnt when importable, else the
built-in implementation in :mod:`icefall_lite.rnnt.loss` and
:mod:`icefall_lite.rnnt.mutual_information`. Typical use in a transducer model::

    simple_loss, (px_grad, py_grad) = rnnt.rnnt_loss_smoothed(
        lm=lm, am=am, symbols=y_padded, termination_symbol=blank_id,
        lm_only_scale=lm_scale, am_only_scale=am_scale, boundary=boundary,
        reduction="sum", return_grad=True)
    ranges = rnnt.get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range=prune_range)
    am_pruned, lm_pruned = rnnt.do_rnnt_pruning(joiner.encoder_proj(encoder_out),
                                                joiner.decoder_proj(decoder_out), ranges)
    logits = joiner(am_pruned, lm_pruned, project_input=False)
    pruned_loss = rnnt.rnnt_loss_pruned(logits=logits, symbols=y_padded, ranges=ranges,
                                        termination_symbol=blank_id, boundary=boundary,
                                        reduction="sum")
"""

from types import ModuleType
from typing import Optional, Tuple, Union

from torch import Tensor

from icefall_lite.rnnt.backend import (
    BACKENDS,
    ENV_VAR,
    add_rnnt_backend_argument,
    backend_module,
    backend_module_for,
    get_backend,
    resolve_backend,
    set_backend,
)

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "add_rnnt_backend_argument",
    "do_rnnt_pruning",
    "get_backend",
    "get_rnnt_prune_ranges",
    "mutual_information_recursion",
    "resolve_backend",
    "rnnt_loss",
    "rnnt_loss_pruned",
    "rnnt_loss_simple",
    "rnnt_loss_smoothed",
    "set_backend",
]

_LossAndGrads = Union[Tensor, Tuple[Tensor, Tuple[Tensor, Tensor]]]


def _implementation(tensor: Tensor, num_symbols: int, boundary: Optional[Tensor]) -> ModuleType:
    """The backend module for this call.

    fast_rnnt 1.3 asserts that every transcript has at least one symbol (k2 and the built-in
    code allow empty ones), so batches with an empty transcript go to the built-in code.
    """
    module = backend_module(tensor.device)
    if module.__name__ == "fast_rnnt":
        if num_symbols == 0 or (boundary is not None and bool((boundary[:, 2] == 0).any())):
            return backend_module_for("builtin")
    return module


def mutual_information_recursion(
    px: Tensor,
    py: Tensor,
    boundary: Optional[Tensor] = None,
    return_grad: bool = False,
) -> _LossAndGrads:
    """Log-sum over monotonic lattice paths; see
    :func:`icefall_lite.rnnt.mutual_information.mutual_information_recursion`."""
    return backend_module(px.device).mutual_information_recursion(
        px=px, py=py, boundary=boundary, return_grad=return_grad
    )


def rnnt_loss_simple(
    lm: Tensor,
    am: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    boundary: Optional[Tensor] = None,
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
    reduction: Optional[str] = "mean",
    return_grad: bool = False,
) -> _LossAndGrads:
    """RNN-T loss with an additive joiner; see :func:`icefall_lite.rnnt.loss.rnnt_loss_simple`."""
    return _implementation(am, symbols.shape[1], boundary).rnnt_loss_simple(
        lm=lm,
        am=am,
        symbols=symbols,
        termination_symbol=termination_symbol,
        boundary=boundary,
        rnnt_type=rnnt_type,
        delay_penalty=delay_penalty,
        reduction=reduction,
        return_grad=return_grad,
    )


def rnnt_loss_smoothed(
    lm: Tensor,
    am: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    lm_only_scale: float = 0.1,
    am_only_scale: float = 0.1,
    boundary: Optional[Tensor] = None,
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
    reduction: Optional[str] = "mean",
    return_grad: bool = False,
) -> _LossAndGrads:
    """Simple loss interpolated with LM-only and AM-only terms; see
    :func:`icefall_lite.rnnt.loss.rnnt_loss_smoothed`."""
    return _implementation(am, symbols.shape[1], boundary).rnnt_loss_smoothed(
        lm=lm,
        am=am,
        symbols=symbols,
        termination_symbol=termination_symbol,
        lm_only_scale=lm_only_scale,
        am_only_scale=am_only_scale,
        boundary=boundary,
        rnnt_type=rnnt_type,
        delay_penalty=delay_penalty,
        reduction=reduction,
        return_grad=return_grad,
    )


def get_rnnt_prune_ranges(
    px_grad: Tensor, py_grad: Tensor, boundary: Tensor, s_range: int
) -> Tensor:
    """Per-frame symbol windows (B, T, s_range); see
    :func:`icefall_lite.rnnt.loss.get_rnnt_prune_ranges`."""
    return _implementation(px_grad, px_grad.shape[1], boundary).get_rnnt_prune_ranges(
        px_grad=px_grad, py_grad=py_grad, boundary=boundary, s_range=s_range
    )


def do_rnnt_pruning(am: Tensor, lm: Tensor, ranges: Tensor) -> Tuple[Tensor, Tensor]:
    """Joiner inputs inside the ranges, each (B, T, s_range, dim); see
    :func:`icefall_lite.rnnt.loss.do_rnnt_pruning`."""
    return backend_module(am.device).do_rnnt_pruning(am=am, lm=lm, ranges=ranges)


def rnnt_loss_pruned(
    logits: Tensor,
    symbols: Tensor,
    ranges: Tensor,
    termination_symbol: int,
    boundary: Optional[Tensor] = None,
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
    reduction: Optional[str] = "mean",
) -> Tensor:
    """RNN-T loss on the pruned joiner output (B, T, s_range, C); see
    :func:`icefall_lite.rnnt.loss.rnnt_loss_pruned`."""
    return _implementation(logits, symbols.shape[1], boundary).rnnt_loss_pruned(
        logits=logits,
        symbols=symbols,
        ranges=ranges,
        termination_symbol=termination_symbol,
        boundary=boundary,
        rnnt_type=rnnt_type,
        delay_penalty=delay_penalty,
        reduction=reduction,
    )


def rnnt_loss(
    logits: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    boundary: Optional[Tensor] = None,
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
    reduction: Optional[str] = "mean",
) -> Tensor:
    """Full RNN-T loss on the joiner output (B, T, S + 1, C); see
    :func:`icefall_lite.rnnt.loss.rnnt_loss`."""
    return _implementation(logits, symbols.shape[1], boundary).rnnt_loss(
        logits=logits,
        symbols=symbols,
        termination_symbol=termination_symbol,
        boundary=boundary,
        rnnt_type=rnnt_type,
        delay_penalty=delay_penalty,
        reduction=reduction,
    )
