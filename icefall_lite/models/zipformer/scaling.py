"""Building blocks of the Zipformer2 encoder (Yao et al., arXiv 2310.11230).

Two kinds of pieces live here:

* model pieces that change the forward computation: :class:`BiasNorm`, the Swoosh activations,
  :class:`ActivationDropoutAndLinear`, :class:`ChunkCausalDepthwiseConv1d`, scaled-initialisation
  layers (:func:`ScaledLinear`, ...), :class:`Dropout2` / :class:`Dropout3`;
* training-only regularisers that leave the forward value untouched and only edit gradients:
  :class:`Balancer` (keeps per-channel mean and RMS in a range), :class:`Whiten` (keeps the
  feature covariance close to a multiple of the identity), :func:`limit_param_value`,
  :func:`penalize_abs_values_gt`, :class:`ScaleGrad`.

Several hyper-parameters follow a schedule over training batches (:class:`ScheduledFloat`); the
training loop calls :func:`set_batch_count` once per batch so that every schedule in the model
sees the current batch index.

Every forward path is TorchScript-friendly: code that TorchScript cannot compile (random numbers
drawn in Python, custom autograd functions) sits behind ``torch.jit.is_scripting()`` checks, which
the TorchScript compiler evaluates statically, or in ``@torch.jit.unused`` methods.

Training on CPU is dominated by a few elementwise activations, the regularisers' backward passes
and the front end's depthwise convolution, so those have hand-written backward passes
(:class:`_SwooshFunction`, :class:`_BalancerFunction`, :func:`depthwise_conv2d`). They compute
the same values and gradients as the plain formulas (up to float rounding); the plain-autograd
versions are kept as references, selected by :func:`reference_implementations` (for tests and
``tools/bench/train_step.py --compare``).
"""

import contextlib
import math
import random
from typing import Dict, Iterator, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn


class ScheduledFloat(nn.Module):
    """A float that changes piecewise-linearly with the training batch index.

    Use it wherever a plain float hyper-parameter is accepted and read it with ``float(obj)``.
    Before the first point and after the last the end values hold. In eval mode, under
    TorchScript/tracing, or before :func:`set_batch_count` was ever called, ``default`` is used.

    It is an ``nn.Module`` only so that :func:`set_batch_count` can find it through
    ``model.modules()``; it has no ``forward``.

    Example: ``ScheduledFloat((0.0, 0.3), (20000.0, 0.1), default=0.1)`` decays a dropout rate
    from 0.3 at batch 0 to 0.1 at batch 20000.
    """

    def __init__(self, *points: Tuple[float, float], default: float = 0.0) -> None:
        super().__init__()
        if len(points) == 0:
            raise ValueError("ScheduledFloat needs at least one (batch, value) point")
        xs = [float(p[0]) for p in points]
        if any(b < a for a, b in zip(xs, xs[1:])):
            raise ValueError(f"ScheduledFloat points must be sorted by batch index: {points}")
        self.points: List[Tuple[float, float]] = [(float(x), float(y)) for x, y in points]
        self.default = float(default)
        # Written by set_batch_count(); None means "not training with a schedule".
        self.batch_count: Optional[float] = None

    def value_at(self, batch_count: float) -> float:
        """The scheduled value at ``batch_count`` (piecewise-linear interpolation)."""
        points = self.points
        if batch_count <= points[0][0]:
            return points[0][1]
        if batch_count >= points[-1][0]:
            return points[-1][1]
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            if x0 <= batch_count <= x1:
                if x1 == x0:
                    return y1
                return y0 + (y1 - y0) * (batch_count - x0) / (x1 - x0)
        return points[-1][1]  # not reached; keeps type checkers happy

    def __float__(self) -> float:
        if self.batch_count is None or not self.training:
            return self.default
        return self.value_at(self.batch_count)

    def extra_repr(self) -> str:
        return f"points={self.points}, default={self.default}, batch_count={self.batch_count}"


FloatLike = Union[float, ScheduledFloat]


def set_batch_count(model: nn.Module, batch_count: float) -> None:
    """Tell every schedule in ``model`` the current training batch index.

    icefall calls this once per batch with ``batch_idx_train`` (scaled by
    ``max_duration * world_size / ref_duration`` so schedules do not depend on the batch size).
    """
    for module in model.modules():
        if hasattr(module, "batch_count"):
            module.batch_count = batch_count


_use_reference_implementations = False


@contextlib.contextmanager
def reference_implementations(enabled: bool = True) -> Iterator[None]:
    """Within this block, training-time code uses the plain-autograd reference implementations
    instead of the hand-written backward passes (same maths, slower; for tests and benchmarks).

    Only training forwards with gradients differ; eval-mode and TorchScript paths are the same
    either way. Not thread-safe (a process-wide switch).
    """
    global _use_reference_implementations
    previous = _use_reference_implementations
    _use_reference_implementations = enabled
    try:
        yield
    finally:
        _use_reference_implementations = previous


def using_reference_implementations() -> bool:
    """True inside :func:`reference_implementations`."""
    return _use_reference_implementations


def _identity(x: Tensor) -> Tensor:
    """Returns ``x`` through a no-op autograd node.

    Regularisers that decide not to act still return a fresh node so that backward hooks
    registered on their output behave the same either way.
    """
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return x
    if _use_reference_implementations:
        # The original no-op node: its backward (a one-tensor cat) copies the gradient.
        return x.chunk(1, dim=-1)[0]
    # A view: its backward is a free reshape of the gradient.
    return x.view_as(x)


# --------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------


def swoosh_l(x: Tensor) -> Tensor:
    """SwooshL(x) = log(1 + exp(x - 4)) - 0.08 x - 0.035 (elementwise, any shape).

    The offset makes SwooshL(0) close to 0; the -0.08 x slope keeps gradients alive for
    negative inputs.
    """
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    return torch.logaddexp(zero, x - 4.0) - 0.08 * x - 0.035


def swoosh_r(x: Tensor) -> Tensor:
    """SwooshR(x) = log(1 + exp(x - 1)) - 0.08 x - 0.313261687 (elementwise, any shape).

    The constant makes SwooshR(0) = 0 exactly.
    """
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    return torch.logaddexp(zero, x - 1.0) - 0.08 * x - 0.313261687


def _swoosh_l_onnx_safe(x: Tensor) -> Tensor:
    # ONNX has no logaddexp; softplus(x - 4) is the same function and exports everywhere.
    return nn.functional.softplus(x - 4.0) - 0.08 * x - 0.035


def _swoosh_r_onnx_safe(x: Tensor) -> Tensor:
    return nn.functional.softplus(x - 1.0) - 0.08 * x - 0.313261687


# (offset, intercept) of swoosh(x) = log(1 + exp(x - offset)) - 0.08 x - intercept
_SWOOSH_L = (4.0, 0.035)
_SWOOSH_R = (1.0, 0.313261687)


class _SwooshFunction(torch.autograd.Function):
    """Swoosh with a one-multiply backward.

    Plain autograd keeps the graph of logaddexp, the subtraction and the 0.08 x term and
    replays it in backward (about ten passes over the tensor); here forward computes the value
    in place on two buffers (the same formula as :func:`swoosh_l` / :func:`swoosh_r`, equal up
    to float rounding) and the derivative ``sigmoid(x - offset) - 0.08`` alongside, and
    backward is ``grad * derivative``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, offset: float, intercept: float) -> Tensor:
        shifted = x - offset
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        y = torch.logaddexp(zero, shifted).add_(x, alpha=-0.08).sub_(intercept)
        derivative = torch.sigmoid_(shifted).sub_(0.08)
        ctx.save_for_backward(derivative)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        (derivative,) = ctx.saved_tensors
        return grad * derivative, None, None


def _swoosh(x: Tensor, activation: str) -> Tensor:
    """SwooshL or SwooshR of ``x`` for a training forward (hand-written backward when ``x``
    needs gradients, unless :func:`reference_implementations` is active)."""
    if x.requires_grad and not _use_reference_implementations:
        offset, intercept = _SWOOSH_L if activation == "SwooshL" else _SWOOSH_R
        return _SwooshFunction.apply(x, offset, intercept)
    return swoosh_l(x) if activation == "SwooshL" else swoosh_r(x)


class SwooshL(nn.Module):
    """Module form of :func:`swoosh_l`; shape-preserving."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.jit.is_tracing():
            return _swoosh_l_onnx_safe(x)
        if torch.jit.is_scripting() or not x.requires_grad:
            return swoosh_l(x)
        return self._with_grad(x)

    @torch.jit.unused
    def _with_grad(self, x: Tensor) -> Tensor:
        return _swoosh(x, "SwooshL")


class SwooshR(nn.Module):
    """Module form of :func:`swoosh_r`; shape-preserving."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.jit.is_tracing():
            return _swoosh_r_onnx_safe(x)
        if torch.jit.is_scripting() or not x.requires_grad:
            return swoosh_r(x)
        return self._with_grad(x)

    @torch.jit.unused
    def _with_grad(self, x: Tensor) -> Tensor:
        return _swoosh(x, "SwooshR")


# --------------------------------------------------------------------------------------------
# Layers with scaled initialisation
# --------------------------------------------------------------------------------------------


def _scale_init_(module: nn.Module, initial_scale: float) -> None:
    with torch.no_grad():
        module.weight.mul_(initial_scale)
        if module.bias is not None:
            nn.init.uniform_(module.bias, -0.1 * initial_scale, 0.1 * initial_scale)


def ScaledLinear(*args, initial_scale: float = 1.0, **kwargs) -> nn.Linear:
    """An ``nn.Linear`` whose initial weights are multiplied by ``initial_scale``.

    With ScaledAdam the update size is proportional to the parameter RMS, so the initial scale
    chosen here persists as the module's "natural" output scale (e.g. 0.05 for residual
    branches so that each starts close to the identity).
    """
    layer = nn.Linear(*args, **kwargs)
    _scale_init_(layer, initial_scale)
    return layer


def ScaledConv1d(*args, initial_scale: float = 1.0, **kwargs) -> nn.Conv1d:
    """An ``nn.Conv1d`` with initial weights multiplied by ``initial_scale``."""
    layer = nn.Conv1d(*args, **kwargs)
    _scale_init_(layer, initial_scale)
    return layer


def ScaledConv2d(*args, initial_scale: float = 1.0, **kwargs) -> nn.Conv2d:
    """An ``nn.Conv2d`` with initial weights multiplied by ``initial_scale``."""
    layer = nn.Conv2d(*args, **kwargs)
    _scale_init_(layer, initial_scale)
    return layer


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------


class _LimitParamValue(torch.autograd.Function):
    """Identity whose backward flips gradient signs that would push ``x`` further out of range."""

    @staticmethod
    def forward(ctx, x: Tensor, min_value: float, max_value: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.min_value = min_value
        ctx.max_value = max_value
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        # Gradient descent subtracts grad: a positive grad below the minimum would lower x
        # further, so flip it; likewise a negative grad above the maximum.
        flip = ((grad > 0) & (x < ctx.min_value)) | ((grad < 0) & (x > ctx.max_value))
        return torch.where(flip, -grad, grad), None, None


def limit_param_value(
    x: Tensor, min_value: float, max_value: float, prob: float = 0.6, training: bool = True
) -> Tensor:
    """Returns ``x`` unchanged but (with probability ``prob``) steers it into
    ``[min_value, max_value]`` through its gradient. Meant for parameters used in forward()."""
    if min_value > max_value:
        raise ValueError(f"limit_param_value: min {min_value} > max {max_value}")
    if training and random.random() < prob:
        return _LimitParamValue.apply(x, min_value, max_value)
    return x


class BiasNorm(nn.Module):
    """BiasNorm: a cheaper, more robust replacement for LayerNorm.

    ``y = x / sqrt(mean((x - bias)^2 over channels)) * exp(log_scale)``

    Unlike LayerNorm there is no mean subtraction from the output and only a scalar output
    scale; the learned ``bias`` is used only inside the RMS, which stops one large constant
    channel from dominating the normaliser. ``log_scale`` is kept within
    ``[log_scale_min, log_scale_max]`` by :func:`limit_param_value`.

    Args:
        num_channels: size of the channel axis.
        channel_dim: which axis holds the channels (negative counts from the end).
    Shapes: input (..., C, ...) with C at ``channel_dim``; output the same.
    """

    def __init__(
        self,
        num_channels: int,
        channel_dim: int = -1,
        log_scale: float = 1.0,
        log_scale_min: float = -1.5,
        log_scale_max: float = 1.5,
    ) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.channel_dim = channel_dim
        self.log_scale = nn.Parameter(torch.tensor(log_scale))
        self.bias = nn.Parameter(torch.empty(num_channels).normal_(mean=0.0, std=1e-4))
        self.log_scale_min = log_scale_min
        self.log_scale_max = log_scale_max

    def forward(self, x: Tensor) -> Tensor:
        channel_dim = self.channel_dim
        if channel_dim < 0:
            channel_dim += x.dim()
        bias = self.bias
        for _ in range(channel_dim + 1, x.dim()):
            bias = bias.unsqueeze(-1)
        log_scale = self.log_scale
        if not torch.jit.is_scripting() and not torch.jit.is_tracing():
            log_scale = limit_param_value(
                log_scale, self.log_scale_min, self.log_scale_max, training=self.training
            )
        scales = torch.mean((x - bias) ** 2, dim=channel_dim, keepdim=True) ** -0.5
        return x * (scales * log_scale.exp())


# --------------------------------------------------------------------------------------------
# Gradient-only regularisers
# --------------------------------------------------------------------------------------------


def _balancer_penalty_terms(
    mean: Tensor,
    variance: Tensor,
    min_mean: float,
    max_mean: float,
    min_rms: float,
    max_rms: float,
) -> Tensor:
    """The balancer's penalty, summed over channels, from per-channel ``mean`` and ``variance``
    (over all non-channel axes). Zero inside the allowed ranges; grows linearly
    (mean / stddev) or log-linearly (rms) outside."""
    stddev = variance.clamp(min=1e-20).sqrt()
    rms = (variance + mean * mean).clamp(min=1e-20).sqrt()
    normalized_mean = mean / stddev
    mean_loss = (normalized_mean - normalized_mean.clamp(min_mean, max_mean)).abs()
    rms_loss = (rms.clamp(min_rms, max_rms) / rms).log().abs()
    return (mean_loss + rms_loss).sum()


class _BalancerFunction(torch.autograd.Function):
    """Identity in forward; in backward adds a small gradient term that pushes each channel's
    (mean / stddev) and RMS into the configured ranges.

    The penalty depends on ``x`` only through the per-channel ``mean`` and ``variance``, so its
    gradient is ``a + b * (x - mean)`` per channel with ``a = dP/dmean / M`` and
    ``b = 2 dP/dvariance / M`` (M elements per channel), and the RMS of that gradient over a
    channel is ``sqrt(a^2 + b^2 variance)``. The fast backward uses these closed
    forms (autograd only on the (C,)-sized statistics); the reference one differentiates the
    penalty through the full-size tensor with autograd.
    """

    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        min_mean: float,
        max_mean: float,
        min_rms: float,
        max_rms: float,
        grad_scale: float,
        channel_dim: int,
    ) -> Tensor:
        ctx.save_for_backward(x)
        ctx.config = (min_mean, max_mean, min_rms, max_rms, grad_scale, channel_dim)
        ctx.reference = _use_reference_implementations
        return x.view_as(x)

    @staticmethod
    def backward(ctx, x_grad: Tensor):
        (x,) = ctx.saved_tensors
        if ctx.reference:
            grad = _balancer_backward_reference(x, x_grad.float(), *ctx.config)
        else:
            grad = _balancer_backward(x, x_grad.float(), *ctx.config)
        return grad.to(x_grad.dtype), None, None, None, None, None, None


def _balancer_backward_reference(
    x: Tensor,
    grad: Tensor,
    min_mean: float,
    max_mean: float,
    min_rms: float,
    max_rms: float,
    grad_scale: float,
    channel_dim: int,
) -> Tensor:
    """Plain-autograd reference of :class:`_BalancerFunction`'s backward (float32 in and out)."""
    with torch.enable_grad():
        x = x.detach().float().requires_grad_(True)
        other_dims = [d for d in range(x.dim()) if d != channel_dim]
        mean_sq = (x**2).mean(dim=other_dims, keepdim=True)
        mean = x.mean(dim=other_dims, keepdim=True)
        penalty = _balancer_penalty_terms(
            mean, mean_sq - mean * mean, min_mean, max_mean, min_rms, max_rms
        )
        (penalty_grad,) = torch.autograd.grad(penalty, x)
    penalty_rms = (penalty_grad**2).mean(dim=other_dims, keepdim=True).sqrt().clamp(min=1e-20)
    penalty_grad = penalty_grad * (grad_scale / penalty_rms)
    # Scale by |grad| so the correction is relative to the main gradient at each element.
    return grad + grad.abs() * penalty_grad


def _balancer_backward(
    x: Tensor,
    grad: Tensor,
    min_mean: float,
    max_mean: float,
    min_rms: float,
    max_rms: float,
    grad_scale: float,
    channel_dim: int,
) -> Tensor:
    """Closed-form version of :func:`_balancer_backward_reference` (see _BalancerFunction)."""
    x = x.detach().float()
    other_dims = [d for d in range(x.dim()) if d != channel_dim]
    count = x.numel() // x.shape[channel_dim]
    variance, mean = torch.var_mean(x, dim=other_dims, correction=0, keepdim=True)
    with torch.enable_grad():
        mean_leaf = mean.clone().requires_grad_(True)
        variance_leaf = variance.clone().requires_grad_(True)
        penalty = _balancer_penalty_terms(
            mean_leaf, variance_leaf, min_mean, max_mean, min_rms, max_rms
        )
        d_mean, d_variance = torch.autograd.grad(penalty, (mean_leaf, variance_leaf))
    # d variance / dx = 2 (x - mean) / M (the mean's own dependence on x sums to zero), so the
    # penalty gradient is offset + slope * (x - mean), whose mean square is
    # offset^2 + slope^2 variance.
    offset = d_mean / count
    slope = d_variance * (2.0 / count)
    penalty_rms = (offset * offset + slope * slope * variance).sqrt().clamp(min=1e-20)
    scale = grad_scale / penalty_rms
    penalty_grad = torch.addcmul((offset - slope * mean) * scale, slope * scale, x)
    # Scale by |grad| so the correction is relative to the main gradient at each element.
    return torch.addcmul(grad, grad.abs(), penalty_grad)


def _proportion_positive_to_mean(p: float) -> float:
    """For Gaussian data, the (mean / stddev) at which a fraction ``p`` of values is positive
    (``sqrt(2) * erfinv(2p - 1)``, with a crude but monotonic approximation of erfinv)."""
    r = 2.0 * p - 1.0
    eps = 1e-10
    atanh = 0.5 * (math.log(1.0 + r + eps) - math.log(1.0 - r + eps))
    return 0.8139535143 * atanh


class Balancer(nn.Module):
    """Keeps per-channel statistics of an activation in range, by editing gradients only.

    Constraints: the fraction of positive values in ``[min_positive, max_positive]`` and the
    mean absolute value in ``[min_abs, max_abs]`` (converted to mean/stddev and RMS limits under a
    Gaussian assumption). Applied on a random fraction ``prob`` of training batches.
    Forward is the identity; does nothing in eval mode or under TorchScript.

    Shapes: input (..., C, ...) with C at ``channel_dim``; output the same.
    """

    def __init__(
        self,
        num_channels: int,
        channel_dim: int,
        min_positive: FloatLike = 0.05,
        max_positive: FloatLike = 0.95,
        min_abs: FloatLike = 0.2,
        max_abs: FloatLike = 100.0,
        grad_scale: FloatLike = 0.04,
        prob: Optional[FloatLike] = None,
    ) -> None:
        super().__init__()
        if prob is None:
            prob = ScheduledFloat((0.0, 0.5), (8000.0, 0.125), default=0.4)
        self.num_channels = num_channels
        self.channel_dim = channel_dim
        self.min_positive = min_positive
        self.max_positive = max_positive
        self.min_abs = min_abs
        self.max_abs = max_abs
        self.grad_scale = grad_scale
        self.prob = prob

    def forward(self, x: Tensor) -> Tensor:
        if torch.jit.is_scripting() or torch.jit.is_tracing():
            return x
        if not self.training or not x.requires_grad:
            return _identity(x)
        return self._balance(x)

    @torch.jit.unused
    def _balance(self, x: Tensor) -> Tensor:
        if random.random() >= float(self.prob):
            return _identity(x)
        if x.shape[self.channel_dim] != self.num_channels:
            raise ValueError(
                f"Balancer expected {self.num_channels} channels on dim {self.channel_dim}, "
                f"got shape {tuple(x.shape)}"
            )
        abs_to_rms = math.sqrt(math.pi / 2.0)  # RMS / mean|x| for Gaussian data
        channel_dim = self.channel_dim if self.channel_dim >= 0 else self.channel_dim + x.dim()
        return _BalancerFunction.apply(
            x,
            _proportion_positive_to_mean(float(self.min_positive)),
            _proportion_positive_to_mean(float(self.max_positive)),
            abs_to_rms * float(self.min_abs),
            abs_to_rms * float(self.max_abs),
            float(self.grad_scale),
            channel_dim,
        )


def whitening_metric(x: Tensor, num_groups: int) -> Tensor:
    """How far the channel covariance of ``x`` is from a multiple of the identity.

    Args:
        x: (..., C) activations; all leading axes are treated as frames.
        num_groups: channels are split into this many equal groups, each judged separately
            (but against a common scale).
    Returns:
        scalar tensor >= 1; exactly 1 when every group's centred covariance is ``lambda * I``.
    """
    x = x.reshape(-1, x.shape[-1])
    num_frames, num_channels = x.shape
    channels_per_group = num_channels // num_groups
    x = x.reshape(num_frames, num_groups, channels_per_group).transpose(0, 1)
    x = x - x.mean(dim=1, keepdim=True)
    covar = torch.matmul(x.transpose(1, 2), x)  # (groups, c, c)
    mean_diag = torch.diagonal(covar, dim1=1, dim2=2).mean()
    # mean of the diagonal of covar @ covar, i.e. the mean squared eigenvalue
    mean_sq_diag = (covar**2).sum() / (num_groups * channels_per_group)
    return mean_sq_diag / (mean_diag**2 + 1e-20)


class _WhitenFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, module: "Whiten") -> Tensor:
        ctx.save_for_backward(x)
        ctx.module = module
        return x.view_as(x)

    @staticmethod
    def backward(ctx, x_grad: Tensor):
        (x,) = ctx.saved_tensors
        module = ctx.module
        with torch.enable_grad():
            x = x.detach().float().requires_grad_(True)
            metric = whitening_metric(x, module.num_groups)
            limit = float(module.whitening_limit)
            if metric.item() < limit:
                # Within limit: check less often until it is violated again.
                module.prob = module.min_prob
                return x_grad, None
            module.prob = module.max_prob
            (penalty_grad,) = torch.autograd.grad(metric, x)
        scale = float(module.grad_scale) * x_grad.float().norm() / (penalty_grad.norm() + 1e-20)
        return x_grad + (penalty_grad * scale).to(x_grad.dtype), None


class Whiten(nn.Module):
    """Pushes the centred feature covariance toward ``lambda * I`` (per group), by editing
    gradients only, when :func:`whitening_metric` exceeds ``whitening_limit``.

    Runs on a random fraction of training batches: ``prob`` switches between ``min_prob`` (while
    the limit holds) and ``max_prob`` (after a violation). ``prob`` is not in ``state_dict()``;
    training checkpoints keep it through :func:`get_regulariser_state`. Forward is the identity;
    does nothing in eval mode or under TorchScript.

    Shapes: input (..., C); output the same.
    """

    def __init__(
        self,
        num_groups: int,
        whitening_limit: FloatLike,
        prob: Union[float, Tuple[float, float]],
        grad_scale: FloatLike,
    ) -> None:
        super().__init__()
        if num_groups < 1:
            raise ValueError(f"Whiten: num_groups must be >= 1, got {num_groups}")
        if isinstance(prob, float):
            prob = (prob, prob)
        self.num_groups = num_groups
        self.whitening_limit = whitening_limit
        self.grad_scale = grad_scale
        self.min_prob, self.max_prob = prob
        self.prob = self.max_prob

    def forward(self, x: Tensor) -> Tensor:
        if torch.jit.is_scripting() or torch.jit.is_tracing():
            return x
        if not self.training or not x.requires_grad:
            return _identity(x)
        return self._whiten(x)

    @torch.jit.unused
    def _whiten(self, x: Tensor) -> Tensor:
        if float(self.grad_scale) == 0.0 or random.random() > self.prob:
            return _identity(x)
        return _WhitenFunction.apply(x, self)


# Training-time state of the regularisers that is neither a parameter nor a buffer (so it is not
# in ``state_dict()``) yet changes while training: only ``Whiten.prob``, which backward moves
# between ``min_prob`` and ``max_prob``. (Balancer's ``prob`` and every ScheduledFloat are
# functions of the batch count, which set_batch_count() re-derives from ``batch_idx_train``.)
# It stays out of state_dict() so that averaged and exported checkpoints keep their format; the
# training checkpoint stores it separately, per rank, through these two functions.


def _whiten_modules(model: nn.Module) -> Dict[str, "Whiten"]:
    """``"<module name>.prob"`` -> module, for every :class:`Whiten` in ``model``."""
    return {
        f"{name}.prob" if name else "prob": module
        for name, module in model.named_modules()
        if isinstance(module, Whiten)
    }


def get_regulariser_state(model: nn.Module) -> Dict[str, float]:
    """The adaptive regulariser state of ``model`` (unwrap DDP first), e.g.
    ``{"encoder.encoders.0.layers.1.self_attn_weights.whiten_keys.prob": 0.025, ...}``:
    one ``"<module name>.prob"`` entry per :class:`Whiten` module. Empty for a model without
    any."""
    return {key: float(module.prob) for key, module in _whiten_modules(model).items()}


def set_regulariser_state(model: nn.Module, state: Dict[str, float]) -> None:
    """Restore what :func:`get_regulariser_state` returned, into a model of the same structure.

    Raises:
      ValueError naming the entries when ``state`` and the model's regularisers do not match
      (a different model configuration); the model is left unchanged then.
    """
    modules = _whiten_modules(model)
    missing = sorted(set(modules) - set(state))
    unexpected = sorted(set(state) - set(modules))
    if missing or unexpected:
        raise ValueError(
            "regulariser state does not match the model: "
            f"missing {missing[:3]}{'...' if len(missing) > 3 else ''} ({len(missing)}), "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''} "
            f"({len(unexpected)})"
        )
    for key, module in modules.items():
        module.prob = float(state[key])


class _WithLoss(torch.autograd.Function):
    """Returns ``x``; in backward behaves as if ``y.sum()`` had been added to the loss."""

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor) -> Tensor:
        ctx.y_shape = y.shape
        return x.view_as(x)

    @staticmethod
    def backward(ctx, x_grad: Tensor):
        return x_grad, torch.ones(ctx.y_shape, dtype=x_grad.dtype, device=x_grad.device)


def penalize_abs_values_gt(x: Tensor, limit: float, penalty: float) -> Tensor:
    """Returns ``x``; backward adds ``penalty * sum(relu(|x| - limit))`` to the loss, a failsafe
    against implausibly large values (e.g. attention scores)."""
    over_limit = (x.abs() > limit).to(x.dtype)
    # Same gradient as penalty * relu(|x| - limit), without storing anything large.
    aux_loss = penalty * (x.sign() * over_limit) * x
    return _WithLoss.apply(x, aux_loss)


class _ScaleGradFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, alpha: float) -> Tensor:
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad * ctx.alpha, None


class ScaleGrad(nn.Module):
    """Identity in forward; multiplies the gradient by ``alpha`` (keeps the first conv's
    gradients inside the fp16 range)."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        if torch.jit.is_scripting() or torch.jit.is_tracing():
            return x
        if not self.training:
            return x
        return self._scale(x)

    @torch.jit.unused
    def _scale(self, x: Tensor) -> Tensor:
        return _ScaleGradFunction.apply(x, self.alpha)


# --------------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------------


class Dropout2(nn.Module):
    """Ordinary dropout whose rate may be a :class:`ScheduledFloat`."""

    def __init__(self, p: FloatLike) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if torch.jit.is_scripting() or torch.jit.is_tracing() or not self.training:
            return x
        return self._dropout(x)

    @torch.jit.unused
    def _dropout(self, x: Tensor) -> Tensor:
        return nn.functional.dropout(x, p=float(self.p), training=True)


def _shared_dropout(x: Tensor, p: float, shared_dim: Optional[int]) -> Tensor:
    """Dropout with one mask value shared along ``shared_dim`` (None: an independent mask)."""
    if p == 0.0:
        return x
    mask_shape = list(x.shape)
    if shared_dim is not None:
        mask_shape[shared_dim] = 1
    mask = (torch.rand(mask_shape, device=x.device) > p).to(x.dtype)
    return x * (mask * (1.0 / (1.0 - p)))


class Dropout3(nn.Module):
    """Dropout with a scheduled rate and a mask shared along ``shared_dim`` (e.g. time)."""

    def __init__(self, p: FloatLike, shared_dim: int) -> None:
        super().__init__()
        self.p = p
        self.shared_dim = shared_dim

    def forward(self, x: Tensor) -> Tensor:
        if torch.jit.is_scripting() or torch.jit.is_tracing() or not self.training:
            return x
        return self._dropout(x)

    @torch.jit.unused
    def _dropout(self, x: Tensor) -> Tensor:
        return _shared_dropout(x, float(self.p), self.shared_dim)


class ActivationDropoutAndLinear(nn.Module):
    """``Linear(Dropout(activation(x)))`` with a Swoosh activation.

    Args:
        in_channels, out_channels: sizes of the Linear.
        activation: "SwooshL" or "SwooshR".
        dropout_p: dropout rate (may be scheduled), applied after the activation.
        dropout_shared_dim: axis along which one mask value is shared (e.g. 0 = time for
            (T, N, C) inputs); None for an ordinary mask.
        initial_scale: as in :func:`ScaledLinear`.
    Shapes: input (..., in_channels); output (..., out_channels).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bias: bool = True,
        activation: str = "SwooshL",
        dropout_p: FloatLike = 0.0,
        dropout_shared_dim: Optional[int] = -1,
        initial_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if activation not in ("SwooshL", "SwooshR"):
            raise ValueError(f"activation must be SwooshL or SwooshR, got {activation!r}")
        linear = ScaledLinear(in_channels, out_channels, bias=bias, initial_scale=initial_scale)
        # Own the parameters directly (same names as nn.Linear) rather than a sub-module.
        self.weight = linear.weight
        self.bias = linear.bias
        self.activation = activation
        self.dropout_p = dropout_p
        self.dropout_shared_dim = dropout_shared_dim

    def forward(self, x: Tensor) -> Tensor:
        if torch.jit.is_tracing():
            if self.activation == "SwooshL":
                x = _swoosh_l_onnx_safe(x)
            else:
                x = _swoosh_r_onnx_safe(x)
        elif not torch.jit.is_scripting() and x.requires_grad:
            x = self._activation_with_grad(x)
        elif self.activation == "SwooshL":
            x = swoosh_l(x)
        else:
            x = swoosh_r(x)
        if not torch.jit.is_scripting() and not torch.jit.is_tracing() and self.training:
            x = self._dropout(x)
        return nn.functional.linear(x, self.weight, self.bias)

    @torch.jit.unused
    def _activation_with_grad(self, x: Tensor) -> Tensor:
        return _swoosh(x, self.activation)

    @torch.jit.unused
    def _dropout(self, x: Tensor) -> Tensor:
        return _shared_dropout(x, float(self.dropout_p), self.dropout_shared_dim)


# --------------------------------------------------------------------------------------------
# Chunk-causal depthwise convolution (streaming)
# --------------------------------------------------------------------------------------------


class ChunkCausalDepthwiseConv1d(nn.Module):
    """A depthwise Conv1d that never looks beyond the end of the current chunk.

    The output is the sum of two convolutions:

    * a causal one of width ``(kernel_size + 1) // 2`` over all past frames (left-padded), and
    * a centred one of width ``kernel_size`` applied inside each chunk separately (zero padding
      at the chunk edges), scaled by a learned per-position factor near the chunk edges so the
      model can compensate for the edge effects.

    With ``chunk_size`` equal to the utterance length this is an ordinary (non-causal) conv of
    the chunk; in streaming the past frames come from a cache of ``kernel_size // 2`` frames.

    Shapes: input (N, C, T); output (N, C, T).
    """

    def __init__(self, channels: int, kernel_size: int, initial_scale: float = 1.0) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.kernel_size = kernel_size
        self.causal_conv = nn.Conv1d(
            channels, channels, kernel_size=(kernel_size + 1) // 2, groups=channels, bias=True
        )
        self.chunkwise_conv = nn.Conv1d(
            channels,
            channels,
            kernel_size=kernel_size,
            groups=channels,
            padding=kernel_size // 2,
            bias=True,
        )
        # Row 0: corrections near the left edge of a chunk; row 1: near the right edge.
        self.chunkwise_conv_scale = nn.Parameter(torch.zeros(2, channels, kernel_size))
        with torch.no_grad():
            self.causal_conv.weight.mul_(initial_scale)
            self.chunkwise_conv.weight.mul_(initial_scale)
            nn.init.uniform_(self.causal_conv.bias, -0.1 * initial_scale, 0.1 * initial_scale)

    def _chunk_scale(self, chunk_size: int) -> Tensor:
        """(C, chunk_size) multiplier for the chunkwise conv output: 1 + edge corrections."""
        left_edge = self.chunkwise_conv_scale[0]
        right_edge = self.chunkwise_conv_scale[1]
        if chunk_size < self.kernel_size:
            left_edge = left_edge[:, :chunk_size]
            right_edge = right_edge[:, self.kernel_size - chunk_size :]
        else:
            pad = torch.zeros(
                left_edge.shape[0],
                chunk_size - self.kernel_size,
                device=left_edge.device,
                dtype=left_edge.dtype,
            )
            left_edge = torch.cat((left_edge, pad), dim=-1)
            right_edge = torch.cat((pad, right_edge), dim=-1)
        return 1.0 + (left_edge + right_edge)

    def forward(self, x: Tensor, chunk_size: int = -1) -> Tensor:
        """
        Args:
            x: (N, C, T).
            chunk_size: frames per chunk; -1 (or >= T) means the whole sequence is one chunk.
        Returns:
            (N, C, T).
        """
        batch_size, num_channels, seq_len = x.shape
        left_pad = self.kernel_size // 2
        if chunk_size < 0 or chunk_size > seq_len:
            chunk_size = seq_len
        right_pad = (chunk_size - seq_len % chunk_size) % chunk_size
        x = nn.functional.pad(x, (left_pad, right_pad))

        x_causal = self.causal_conv(x[..., : left_pad + seq_len])

        x_chunk = x[..., left_pad:]
        num_chunks = x_chunk.shape[2] // chunk_size
        x_chunk = x_chunk.reshape(batch_size, num_channels, num_chunks, chunk_size)
        x_chunk = x_chunk.permute(0, 2, 1, 3).reshape(
            batch_size * num_chunks, num_channels, chunk_size
        )
        x_chunk = self.chunkwise_conv(x_chunk) * self._chunk_scale(chunk_size)
        x_chunk = x_chunk.reshape(batch_size, num_chunks, num_channels, chunk_size)
        x_chunk = x_chunk.permute(0, 2, 1, 3).reshape(
            batch_size, num_channels, num_chunks * chunk_size
        )
        return x_chunk[..., :seq_len] + x_causal

    def streaming_forward(self, x: Tensor, cache: Tensor) -> Tuple[Tensor, Tensor]:
        """Process one chunk (the whole of ``x``).

        Args:
            x: (N, C, T) the current chunk.
            cache: (N, C, kernel_size // 2) the last frames of the previous chunks' input.
        Returns:
            (N, C, T) output and the updated cache.
        """
        left_pad = self.kernel_size // 2
        x = torch.cat((cache, x), dim=2)
        new_cache = x[..., x.shape[2] - left_pad :]
        x_causal = self.causal_conv(x)
        x_chunk = self.chunkwise_conv(x[..., left_pad:])
        x_chunk = x_chunk * self._chunk_scale(x_chunk.shape[2])
        return x_chunk + x_causal, new_cache


# --------------------------------------------------------------------------------------------
# Depthwise 2-D convolution with a faster CPU backward
# --------------------------------------------------------------------------------------------


def _depthwise_weight_grad(x: Tensor, grad: Tensor, kernel_size: Tuple[int, int]) -> Tensor:
    """Gradient of a depthwise, stride-1, "same"-padded conv2d with respect to its weight.

    ``dW[c, i, j] = sum_{n, t, f} x_pad[n, c, t + i, f + j] * grad[n, c, t, f]``. For each time
    tap i this is one batched matmul over time, (N*C, F_pad, T) @ (N*C, T, F) -> (N*C, F_pad, F),
    whose diagonals (offset j) summed give the frequency taps; far faster on CPU than the
    generic depthwise backward.

    Args:
        x: (N, C, T, F) conv input; grad: (N, C, T, F) gradient of the conv output.
        kernel_size: (kh, kw), both odd.
    Returns:
        (C, 1, kh, kw).
    """
    kh, kw = kernel_size
    batch_size, channels, num_frames, num_bins = grad.shape
    x_pad = nn.functional.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2))
    padded_bins = x_pad.shape[3]
    grad_rows = grad.reshape(batch_size * channels, num_frames, num_bins)
    weight_grad = grad.new_empty(channels, kh, kw)
    for i in range(kh):
        x_rows = x_pad[:, :, i : i + num_frames, :].transpose(2, 3)
        x_rows = x_rows.reshape(batch_size * channels, padded_bins, num_frames)
        products = torch.bmm(x_rows, grad_rows).reshape(batch_size, channels, padded_bins, num_bins)
        products = products.sum(dim=0)  # (C, F_pad, F): products[c, f + j, f] is tap j's term
        diagonals = products.as_strided(
            (channels, kw, num_bins),
            (padded_bins * num_bins, num_bins, num_bins + 1),
            products.storage_offset(),
        )
        weight_grad[:, i, :] = diagonals.sum(dim=-1)
    return weight_grad.unsqueeze(1)


class _DepthwiseConv2dFunction(torch.autograd.Function):
    """Depthwise stride-1 conv2d with "same" padding; forward is ``nn.functional.conv2d``
    itself, backward uses a flipped-kernel conv for the input and
    :func:`_depthwise_weight_grad` for the weight."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        padding = (weight.shape[2] // 2, weight.shape[3] // 2)
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return nn.functional.conv2d(x, weight, bias, padding=padding, groups=x.shape[1])

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        kernel_size = (weight.shape[2], weight.shape[3])
        padding = (kernel_size[0] // 2, kernel_size[1] // 2)
        grad = grad.contiguous()
        x_grad = weight_grad = bias_grad = None
        if ctx.needs_input_grad[0]:
            # The transpose of a stride-1 "same" correlation is the correlation with the
            # kernel flipped in both axes.
            x_grad = nn.functional.conv2d(
                grad, weight.flip(2, 3), None, padding=padding, groups=x.shape[1]
            )
        if ctx.needs_input_grad[1]:
            weight_grad = _depthwise_weight_grad(x, grad, kernel_size).to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            bias_grad = grad.sum(dim=(0, 2, 3))
        return x_grad, weight_grad, bias_grad


def depthwise_conv2d(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv(x)`` for a depthwise, stride-1, odd-kernel Conv2d with "same" padding.

    In a float32 CPU training forward that needs gradients (and outside
    :func:`reference_implementations`) the backward is :class:`_DepthwiseConv2dFunction`'s;
    otherwise (CUDA, autocast, eval) this is just ``conv(x)``.

    Shapes: x (N, C, T, F); output (N, C, T, F).
    """
    kh, kw = conv.kernel_size
    fast_ok = (
        conv.groups == x.shape[1] == conv.out_channels
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.padding == (kh // 2, kw // 2)
        and kh % 2 == 1
        and kw % 2 == 1
        and conv.padding_mode == "zeros"
    )
    # CPU only: cuDNN's depthwise backward is already fast. Plain float only: under autocast
    # the saved input and the incoming gradient would have different dtypes.
    fast_ok = (
        fast_ok
        and x.device.type == "cpu"
        and x.dtype == conv.weight.dtype
        and not torch.is_autocast_enabled(x.device.type)
    )
    needs_grad = x.requires_grad or conv.weight.requires_grad
    if not fast_ok or not needs_grad or _use_reference_implementations:
        return conv(x)
    return _DepthwiseConv2dFunction.apply(x, conv.weight, conv.bias)


def convert_num_channels(x: Tensor, num_channels: int) -> Tensor:
    """Truncates or zero-pads the last axis of ``x`` to ``num_channels``; (..., C) -> (..., C')."""
    if num_channels <= x.shape[-1]:
        return x[..., :num_channels]
    pad_shape = list(x.shape)
    pad_shape[-1] = num_channels - x.shape[-1]
    return torch.cat((x, torch.zeros(pad_shape, dtype=x.dtype, device=x.device)), dim=-1)


__all__ = [
    "ActivationDropoutAndLinear",
    "Balancer",
    "BiasNorm",
    "ChunkCausalDepthwiseConv1d",
    "Dropout2",
    "Dropout3",
    "FloatLike",
    "ScaleGrad",
    "ScaledConv1d",
    "ScaledConv2d",
    "ScaledLinear",
    "ScheduledFloat",
    "SwooshL",
    "SwooshR",
    "Whiten",
    "convert_num_channels",
    "depthwise_conv2d",
    "get_regulariser_state",
    "limit_param_value",
    "penalize_abs_values_gt",
    "reference_implementations",
    "set_batch_count",
    "set_regulariser_state",
    "swoosh_l",
    "swoosh_r",
    "using_reference_implementations",
    "whitening_metric",
]
