"""Optimizers and learning-rate schedules: ScaledAdam and Eden (icefall's Zipformer recipe),
Novograd and warm-up + cosine / polynomial decay (:class:`WarmupDecay`; Jasper and QuartzNet).

ScaledAdam is Adam whose update of each non-scalar parameter tensor is multiplied by that
tensor's RMS value, so every tensor changes by about the same *relative* amount per step, plus
an explicit, slowly learned update of each tensor's overall scale (its log-RMS), kept inside
``[param_min_rms, param_max_rms]``. It also clips the gradient norm relative to the recent median.

Eden decays the learning rate smoothly in both batches and epochs:
``lr = base_lr * ((b^2 + B^2) / B^2)^-0.25 * ((e^2 + E^2) / E^2)^-0.25 * warmup(b)``.
"""

import logging
import math
from collections import defaultdict
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn
from torch.optim import Optimizer


def _is_scalar(p: Tensor) -> bool:
    """Scalars get plain Adam (no RMS scaling) with a reduced learning rate."""
    return p.numel() == 1


class ScaledAdam(Optimizer):
    """Adam with updates scaled by each parameter tensor's RMS, learned tensor scales and
    median-relative gradient clipping.

    Args:
        params: parameters, ``named_parameters()`` pairs, or a list of groups with either
            ``"params"`` or ``"named_params"`` (names only improve the clipping log messages).
        lr: learning rate (typically 0.045 with Eden, i.e. much larger than for Adam).
        clipping_scale: if set, gradients (weighted by parameter RMS) are clipped to
            ``clipping_scale`` x the median norm of the last ``clipping_update_period`` steps.
        betas: (momentum, second-moment) decay rates.
        scalar_lr_scale: learning-rate factor for scalar parameters and for the tensor-scale
            updates.
        eps: added to the Adam denominator.
        param_min_rms, param_max_rms: allowed range of each tensor's RMS.
        scalar_max: scalar parameters are clamped to ``[-scalar_max, scalar_max]``.
        size_update_period: steps between updates of the tensor scales.
        clipping_update_period: steps between recomputations of the clipping threshold.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 3e-2,
        clipping_scale: Optional[float] = None,
        betas: Tuple[float, float] = (0.9, 0.98),
        scalar_lr_scale: float = 0.1,
        eps: float = 1.0e-8,
        param_min_rms: float = 1.0e-5,
        param_max_rms: float = 3.0,
        scalar_max: float = 10.0,
        size_update_period: int = 4,
        clipping_update_period: int = 100,
    ) -> None:
        if lr < 0:
            raise ValueError(f"ScaledAdam: lr must be non-negative, got {lr}")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 < betas[1] < 1.0:
            raise ValueError(f"ScaledAdam: betas must lie in [0, 1), got {betas}")
        if clipping_scale is not None and clipping_scale <= 0:
            raise ValueError(f"ScaledAdam: clipping_scale must be positive, got {clipping_scale}")
        defaults = dict(
            lr=lr,
            clipping_scale=clipping_scale,
            betas=betas,
            scalar_lr_scale=scalar_lr_scale,
            eps=eps,
            param_min_rms=param_min_rms,
            param_max_rms=param_max_rms,
            scalar_max=scalar_max,
            size_update_period=size_update_period,
            clipping_update_period=clipping_update_period,
        )
        groups, names = self._split_names(params)
        super().__init__(groups, defaults)
        self.parameter_names: List[List[str]] = names

    @staticmethod
    def _split_names(params: Iterable[Any]) -> Tuple[List[Dict[str, Any]], List[List[str]]]:
        """Normalises the accepted ``params`` forms into torch param groups plus names."""
        items = list(params)
        if not items:
            raise ValueError("ScaledAdam: got an empty parameter list")
        if not isinstance(items[0], dict):
            items = [{"params": items}]
        groups, names = [], []
        for group in items:
            group = dict(group)
            if "named_params" in group:
                pairs = list(group.pop("named_params"))
                group["params"] = [p for _, p in pairs]
                group_names = [n for n, _ in pairs]
            else:
                entries = list(group["params"])
                if entries and isinstance(entries[0], tuple):
                    group["params"] = [p for _, p in entries]
                    group_names = [n for n, _ in entries]
                else:
                    group["params"] = entries
                    group_names = [f"param{i}" for i in range(len(entries))]
            groups.append(group)
            names.append(group_names)
        return groups, names

    # -----------------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure=None):
        """One optimisation step (parameters without gradients are skipped)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group, names in zip(self.param_groups, self.parameter_names):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if p.grad.is_sparse:
                    raise RuntimeError("ScaledAdam does not support sparse gradients")
            clip = self._clipping_factor(group, names)
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad if clip == 1.0 else p.grad * clip
                self._update(group, p, grad)
        return loss

    def _update(self, group: Dict[str, Any], p: Tensor, grad: Tensor) -> None:
        state = self.state[p]
        if "step" not in state:
            state["step"] = 0
            state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float)
            state["delta"] = torch.zeros_like(p, dtype=torch.float)
            if not _is_scalar(p):
                period = group["size_update_period"]
                state["param_rms"] = _rms(p).float()
                state["scale_grads"] = torch.zeros(period, device=p.device, dtype=torch.float)
                state["scale_exp_avg_sq"] = torch.zeros((), device=p.device, dtype=torch.float)
        step = state["step"]
        grad = grad.float()
        beta1, beta2 = group["betas"]

        # Adam direction, no momentum yet.
        lr = group["lr"] * (group["scalar_lr_scale"] if _is_scalar(p) else 1.0)
        exp_avg_sq = state["exp_avg_sq"]
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction2 = 1 - beta2 ** (step + 1)
        second_moment = exp_avg_sq / bias_correction2 if bias_correction2 < 0.99 else exp_avg_sq
        delta = -lr * grad / (second_moment.sqrt() + group["eps"])

        if not _is_scalar(p):
            delta = self._scale_update(group, p, grad, state, delta)

        stored = state["delta"]
        stored.mul_(beta1).add_(delta, alpha=1 - beta1)
        p.add_(stored.to(p.dtype))
        if _is_scalar(p):
            p.clamp_(min=-group["scalar_max"], max=group["scalar_max"])
        state["step"] = step + 1

    @staticmethod
    def _scale_update(
        group: Dict[str, Any], p: Tensor, grad: Tensor, state: Dict[str, Any], delta: Tensor
    ) -> Tensor:
        """Scales the Adam step by the tensor's RMS and, every ``size_update_period`` steps,
        adds a step along ``p`` itself that learns the tensor's overall scale."""
        step = state["step"]
        period = group["size_update_period"]
        param_rms = state["param_rms"]
        scale_grads = state["scale_grads"]
        # d loss / d log(scale) for p = scale * p_normalised is sum(p * grad).
        scale_grads[step % period] = (p.float() * grad).sum()
        end_of_period = step % period == period - 1
        if end_of_period:
            param_rms.copy_(_rms(p).float())
        delta = delta * param_rms.clamp(min=group["param_min_rms"])

        if end_of_period and step > 0:
            beta2 = group["betas"][1]
            beta2_period = beta2**period
            scale_exp_avg_sq = state["scale_exp_avg_sq"]
            scale_exp_avg_sq.mul_(beta2_period).add_(
                (scale_grads**2).mean(), alpha=1 - beta2_period
            )
            num_size_steps = (step + 1) // period
            bias_correction2 = 1 - beta2_period**num_size_steps
            size_lr = group["lr"] * group["scalar_lr_scale"]
            scale_step = (
                -size_lr
                * (bias_correction2**0.5)
                * scale_grads.sum()
                / (scale_exp_avg_sq.sqrt() + group["eps"])
            )
            if param_rms < group["param_min_rms"]:
                scale_step = torch.zeros_like(scale_step)
            scale_step = scale_step.clamp(min=-0.1, max=0.1)
            # never grow past param_max_rms
            scale_step = torch.minimum(
                scale_step, (group["param_max_rms"] - param_rms) / param_rms.clamp(min=1e-20)
            )
            delta = delta + p.float() * scale_step
        return delta

    def _clipping_factor(self, group: Dict[str, Any], names: List[str]) -> float:
        """Factor <= 1 for this step's gradients, from the RMS-weighted gradient norm compared
        with ``clipping_scale`` x the median of recent norms."""
        clipping_scale = group["clipping_scale"]
        first_state = self.state[group["params"][0]]
        step = first_state.get("step", 0)
        if clipping_scale is None or step == 0:
            return 1.0
        period = group["clipping_update_period"]
        scalar_lr_scale = group["scalar_lr_scale"]

        sum_sq = torch.zeros((), device=group["params"][0].device)
        contributions: Dict[str, Tensor] = {}
        for p, name in zip(group["params"], names):
            if p.grad is None:
                continue
            if _is_scalar(p):
                weighted = (p.grad.float() ** 2).sum() * scalar_lr_scale**2
            else:
                rms = self.state[p].get("param_rms")
                if rms is None:  # new parameter, no statistics yet
                    rms = _rms(p).float()
                weighted = ((p.grad.float() * rms) ** 2).sum()
            contributions[name] = weighted
            sum_sq += weighted
        norm = sum_sq.sqrt()

        if "model_norms" not in first_state:
            first_state["model_norms"] = torch.zeros(period, device=norm.device)
            first_state["num_clipped"] = 0
        first_state["model_norms"][step % period] = norm

        # Early estimates (from only the last `step` norms) so clipping starts before `period`.
        early_steps = [s for s in (10, 20, 40) if s < period]
        if step % period == 0 or step in early_steps:
            norms = first_state["model_norms"].sort()[0].cpu()
            if step in early_steps:
                norms = norms[-step:]
            n = norms.numel()
            quartiles = [norms[min(n - 1, (n // 4) * i)].item() for i in range(5)]
            median = quartiles[2]
            if median != median:
                raise RuntimeError("ScaledAdam: too many non-finite gradients")
            threshold = clipping_scale * median * (2.0 if step in early_steps else 1.0)
            percent = 100.0 * first_state["num_clipped"] / n
            first_state["model_norm_threshold"] = threshold
            first_state["num_clipped"] = 0
            logging.info(
                "Clipping_scale=%s, grad-norm quartiles %s, threshold=%.3e, percent-clipped=%.1f",
                clipping_scale,
                " ".join(f"{q:.3e}" for q in quartiles),
                threshold,
                percent,
            )

        threshold = first_state.get("model_norm_threshold")
        if threshold is None:
            return 1.0
        factor = min(1.0, threshold / (norm.item() + 1.0e-20))
        if factor != factor:  # nan gradients: skip this step's update
            factor = 0.0
        if factor < 1.0:
            first_state["num_clipped"] += 1
        if factor < 0.5:
            dominant = max(contributions, key=lambda k: contributions[k].item())
            share = (contributions[dominant] / sum_sq.clamp(min=1e-20)).item()
            logging.warning(
                "Scaling gradients by %.3g (threshold %.3e); largest share %.2f from %s",
                factor,
                threshold,
                share,
                dominant,
            )
        if factor == 0.0:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.zero_()
        return factor


def _rms(p: Tensor) -> Tensor:
    return (p.detach() ** 2).mean().sqrt()


# ---------------------------------------------------------------------------------------------
# Learning-rate schedules
# ---------------------------------------------------------------------------------------------


class LRScheduler:
    """Base class for schedules that depend on both the batch and the epoch index.

    The training loop calls :meth:`step_batch` after every optimizer step and
    :meth:`step_epoch` at the start of every epoch; both set the group learning rates.

    Any schedule can end with a linear cooldown (:meth:`set_cooldown`): over the last
    ``cooldown_epochs`` of ``num_epochs`` the learning rate is multiplied by a factor falling
    linearly from 1 to 0. Progress within an epoch is counted in optimizer steps, against the
    number of steps the previous epoch took (the same on every DDP rank, unlike cut counts, so
    all ranks keep one learning rate); during the first epoch the ramp sits at the epoch start.
    """

    def __init__(self, optimizer: Optimizer, verbose: bool = False) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        self.verbose = verbose
        for group in optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])
        self.base_lrs = [group["base_lr"] for group in optimizer.param_groups]
        self.epoch = 0
        self.batch = 0
        self.num_epochs = 0
        self.cooldown_epochs = 0.0
        self.epoch_start_batch = 0
        self.steps_per_epoch = 0
        self._last_lr = list(self.base_lrs)

    def set_cooldown(self, num_epochs: int, cooldown_epochs: float) -> None:
        """Fall linearly to 0 over the last ``cooldown_epochs`` (0 = no cooldown) of
        ``num_epochs``; call before training starts (or resumes)."""
        if cooldown_epochs < 0 or cooldown_epochs > num_epochs:
            raise ValueError(
                f"--lr-cooldown-epochs must be between 0 and --num-epochs {num_epochs}, "
                f"got {cooldown_epochs:g}"
            )
        self.num_epochs = num_epochs
        self.cooldown_epochs = float(cooldown_epochs)
        self._set_lrs()

    def epochs_done(self) -> float:
        """Training progress in epochs: the epoch index plus the fraction of it done, in
        optimizer steps against the previous epoch's count (0 until one epoch has ended)."""
        if self.steps_per_epoch <= 0:
            return float(self.epoch)
        fraction = (self.batch - self.epoch_start_batch) / self.steps_per_epoch
        return self.epoch + min(1.0, max(0.0, fraction))

    def cooldown_factor(self) -> float:
        """1 before the cooldown, then linearly down to 0 at the end of ``num_epochs``."""
        if self.cooldown_epochs <= 0:
            return 1.0
        remaining = self.num_epochs - self.epochs_done()
        return min(1.0, max(0.0, remaining / self.cooldown_epochs))

    def state_dict(self) -> Dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "epoch_start_batch": self.epoch_start_batch,
            "steps_per_epoch": self.steps_per_epoch,
        }

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.epoch = state_dict["epoch"]
        self.batch = state_dict["batch"]
        # Checkpoints written before the cooldown existed lack the two step counters.
        self.epoch_start_batch = state_dict.get("epoch_start_batch", self.batch)
        self.steps_per_epoch = state_dict.get("steps_per_epoch", 0)
        self._set_lrs()

    def get_last_lr(self) -> List[float]:
        """The learning rates last set, one per param group."""
        return self._last_lr

    def get_lr(self) -> List[float]:
        raise NotImplementedError

    def step_batch(self, batch: Optional[int] = None) -> None:
        self.batch = self.batch + 1 if batch is None else batch
        self._set_lrs()

    def step_epoch(self, epoch: Optional[Union[int, float]] = None) -> None:
        new_epoch = self.epoch + 1 if epoch is None else epoch
        # A new epoch (not the same one again, as on a mid-epoch resume) ends the previous
        # one, whose step count paces the cooldown through this one.
        if new_epoch != self.epoch and self.batch > self.epoch_start_batch:
            self.steps_per_epoch = self.batch - self.epoch_start_batch
            self.epoch_start_batch = self.batch
        self.epoch = new_epoch
        self._set_lrs()

    def _set_lrs(self) -> None:
        factor = self.cooldown_factor()
        lrs = [lr * factor for lr in self.get_lr()]
        for i, (group, lr) in enumerate(zip(self.optimizer.param_groups, lrs)):
            group["lr"] = lr
            if self.verbose:
                logging.info(
                    "Epoch=%s, batch=%s: learning rate of group %d -> %.4e",
                    self.epoch,
                    self.batch,
                    i,
                    lr,
                )
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


class Eden(LRScheduler):
    """Eden schedule:

    ``lr = base_lr * ((batch^2 + lr_batches^2) / lr_batches^2) ** -0.25
    * ((epoch^2 + lr_epochs^2) / lr_epochs^2) ** -0.25 * warmup``

    where ``warmup`` rises linearly from ``warmup_start`` to 1 over ``warmup_batches`` batches.
    The learning rate falls roughly as ``batch^-0.5`` after ``lr_batches`` and as
    ``epoch^-0.5`` after ``lr_epochs``; ``base_lr`` is the optimizer's ``lr`` (0.045 suggested
    with ScaledAdam). Epochs count from 0 (icefall passes ``epoch - 1``).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        lr_batches: Union[int, float],
        lr_epochs: Union[int, float],
        warmup_batches: Union[int, float] = 500.0,
        warmup_start: float = 0.5,
        verbose: bool = False,
    ) -> None:
        if lr_batches <= 0:
            raise ValueError(f"--lr-batches must be positive, got {lr_batches}")
        if lr_epochs <= 0:
            raise ValueError(f"--lr-epochs must be positive, got {lr_epochs}")
        if not 0.0 <= warmup_start <= 1.0:
            raise ValueError(f"Eden: warmup_start must be in [0, 1], got {warmup_start}")
        if warmup_batches < 0:
            raise ValueError(f"Eden: warmup_batches must be non-negative, got {warmup_batches}")
        super().__init__(optimizer, verbose)
        self.lr_batches = lr_batches
        self.lr_epochs = lr_epochs
        self.warmup_batches = warmup_batches
        self.warmup_start = warmup_start
        self._set_lrs()

    def get_lr(self) -> List[float]:
        batch_factor = ((self.batch**2 + self.lr_batches**2) / self.lr_batches**2) ** -0.25
        epoch_factor = ((self.epoch**2 + self.lr_epochs**2) / self.lr_epochs**2) ** -0.25
        if self.batch >= self.warmup_batches:
            warmup = 1.0
        else:
            warmup = self.warmup_start + (1.0 - self.warmup_start) * (
                self.batch / self.warmup_batches
            )
        return [base * batch_factor * epoch_factor * warmup for base in self.base_lrs]


def get_parameter_groups_with_lrs(
    model: nn.Module, lr: float, include_names: bool = False
) -> List[Dict[str, Any]]:
    """Parameter groups for ScaledAdam honouring per-module ``lr_scale`` attributes.

    A module may set ``module.lr_scale = 0.5`` (say) to scale the learning rate of all its
    parameters (scales of nested modules multiply). Returns one group per distinct learning rate:
    ``{"params": [...], "lr": ...}`` or, with ``include_names``, ``{"named_params": [(name, p),
    ...], "lr": ...}``.
    """
    scale_of: Dict[str, float] = {}
    for module_name, module in model.named_modules():
        scale = float(getattr(module, "lr_scale", 1.0))
        parent = module_name.rsplit(".", 1)[0] if "." in module_name else ""
        inherited = scale_of.get(parent, 1.0) if module_name else 1.0
        scale_of[module_name] = inherited * scale
    by_lr: Dict[float, List[Tuple[str, nn.Parameter]]] = defaultdict(list)
    for name, param in model.named_parameters():
        module_name = name.rsplit(".", 1)[0] if "." in name else ""
        by_lr[lr * scale_of.get(module_name, 1.0)].append((name, param))
    groups = []
    for group_lr, pairs in by_lr.items():
        if include_names:
            groups.append({"named_params": pairs, "lr": group_lr})
        else:
            groups.append({"params": [p for _, p in pairs], "lr": group_lr})
    return groups


class WarmupHoldDecay(LRScheduler):
    """Linear warm-up, hold, then exponential decay (the schedule of Myrtle.ai's RNN-T scripts):

    * steps ``[0, warmup_steps)``: ``min_lr + (base_lr - min_lr) * step / warmup_steps``;
    * steps ``[warmup_steps, warmup_steps + hold_steps)``: ``base_lr``;
    * after: ``base_lr * 0.5 ** ((step - warmup_steps - hold_steps) / half_life_steps)``,
      never below ``min_lr``.

    ``step`` is the number of optimizer steps taken (the training loop's ``batch_idx_train``);
    epochs do not enter. Each parameter group keeps its own ``base_lr`` (e.g. the joint
    network's, scaled by ``--joint-net-lr-factor``); ``min_lr`` is scaled with it.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int,
        hold_steps: int,
        half_life_steps: float,
        min_lr: float = 0.0,
        verbose: bool = False,
    ) -> None:
        if warmup_steps < 0 or hold_steps < 0:
            raise ValueError(
                f"--warmup-steps {warmup_steps} and --hold-steps {hold_steps} must be >= 0"
            )
        if half_life_steps <= 0:
            raise ValueError(f"--half-life-steps must be positive, got {half_life_steps}")
        if min_lr < 0:
            raise ValueError(f"--min-lr must be non-negative, got {min_lr}")
        super().__init__(optimizer, verbose)
        self.warmup_steps = warmup_steps
        self.hold_steps = hold_steps
        self.half_life_steps = half_life_steps
        self.top = max(self.base_lrs) if self.base_lrs else 1.0
        self.min_lr = min_lr
        self._set_lrs()

    def factor(self, step: int) -> float:
        """The learning rate at ``step`` relative to ``base_lr`` (for ``min_lr`` relative to
        the largest group's base_lr)."""
        floor = self.min_lr / self.top if self.top > 0 else 0.0
        if step < self.warmup_steps:
            return floor + (1.0 - floor) * step / self.warmup_steps
        decay_steps = step - self.warmup_steps - self.hold_steps
        if decay_steps <= 0:
            return 1.0
        return max(floor, 0.5 ** (decay_steps / self.half_life_steps))

    def get_lr(self) -> List[float]:
        factor = self.factor(self.batch)
        return [base * factor for base in self.base_lrs]


# ---------------------------------------------------------------------------------------------
# Novograd and the warm-up + decay schedules of the Jasper/QuartzNet recipe


class Novograd(Optimizer):
    """Novograd (Ginsburg et al. 2019, the optimizer of Jasper and QuartzNet): Adam-like, but
    the second moment is one scalar per parameter tensor (a layer) and weight decay is added
    to the normalised gradient.

    For each tensor ``w`` with gradient ``g`` at step ``t``::

        v_t = ||g||^2                                   (t = 1)
        v_t = beta2 * v_{t-1} + (1 - beta2) * ||g||^2   (t > 1)
        u   = g / (sqrt(v_t) + eps) + weight_decay * w
        m_t = beta1 * m_{t-1} + c * u      (c = 1 - beta1 with grad_averaging, else 1)
        w  <- w - lr * m_t

    Args:
      params: parameters or parameter groups.
      lr: learning rate.
      betas: (beta1, beta2).
      eps: added to the layer's gradient norm.
      weight_decay: decoupled-from-the-norm L2 weight (0.001 in QuartzNet).
      grad_averaging: scale the momentum input by 1 - beta1 (an exponential average).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        betas: Tuple[float, float] = (0.95, 0.98),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        grad_averaging: bool = False,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"Novograd: lr must be positive, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"Novograd: betas must be in [0, 1), got {betas}")
        if weight_decay < 0:
            raise ValueError(f"Novograd: weight_decay must be >= 0, got {weight_decay}")
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, grad_averaging=grad_averaging
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Novograd does not support sparse gradients")
                grad = p.grad.float()
                state = self.state[p]
                norm_sq = grad.pow(2).sum()
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = norm_sq.clone()
                else:
                    state["exp_avg_sq"].mul_(beta2).add_(norm_sq, alpha=1.0 - beta2)
                state["step"] += 1
                update = grad / (state["exp_avg_sq"].sqrt() + group["eps"])
                if group["weight_decay"] != 0:
                    update = update.add(p.float(), alpha=group["weight_decay"])
                if group["grad_averaging"]:
                    update = update * (1.0 - beta1)
                state["exp_avg"].mul_(beta1).add_(update)
                p.add_(state["exp_avg"].to(p.dtype), alpha=-group["lr"])
        return loss


class WarmupDecay(LRScheduler):
    """Linear warm-up to the base learning rate, then cosine or polynomial decay to ``min_lr``
    (NeMo's ``CosineAnnealing`` / ``PolynomialDecayAnnealing``); batch-driven, epochs ignored.

    With ``w = warmup_batches``, ``D = decay_batches`` and ``p = min(1, (batch - w) / (D - w))``::

        lr = base_lr * (batch + 1) / w                                (batch < w)
        lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2      (cosine)
        lr = min_lr + (base_lr - min_lr) * (1 - p) ** power           (polynomial)

    Args:
      optimizer: its groups' ``lr`` are the base learning rates.
      decay_batches: the step at which ``min_lr`` is reached (and kept); ``None`` to size it
        later with :meth:`set_decay_batches` (until then the rate stays at the base after the
        warm-up). It is saved in :meth:`state_dict`, so a resumed run keeps the same curve.
      warmup_batches: steps of linear warm-up.
      kind: ``cosine`` or ``poly``.
      min_lr: final learning rate (the same for every group).
      power: exponent of the polynomial decay.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        decay_batches: Optional[int],
        warmup_batches: int = 0,
        kind: str = "cosine",
        min_lr: float = 0.0,
        power: float = 2.0,
        verbose: bool = False,
    ) -> None:
        if kind not in ("cosine", "poly"):
            raise ValueError(f"--lr-schedule {kind}: expected eden, cosine or poly")
        if warmup_batches < 0:
            raise ValueError(f"warm-up batches must be >= 0, got {warmup_batches}")
        if min_lr < 0:
            raise ValueError(f"--min-lr must be >= 0, got {min_lr}")
        super().__init__(optimizer, verbose)
        self.warmup_batches = warmup_batches
        self.kind = kind
        self.min_lr = min_lr
        self.power = power
        self.decay_batches: Optional[int] = None
        if decay_batches is not None:
            self.set_decay_batches(decay_batches)
        self._set_lrs()

    def set_decay_batches(self, decay_batches: int) -> None:
        """The step at which the decay reaches ``min_lr``; must exceed the warm-up."""
        if decay_batches <= self.warmup_batches:
            raise ValueError(
                f"--lr-decay-batches {decay_batches} must exceed the warm-up "
                f"({self.warmup_batches})"
            )
        self.decay_batches = int(decay_batches)
        self._set_lrs()

    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), "decay_batches": self.decay_batches}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        # A resume with --lr-decay-batches 0 keeps the length the run started with; a length
        # given by the flag wins. Checkpoints of runs before it was saved lack it.
        saved = state_dict.get("decay_batches")
        if self.decay_batches is None and saved is not None:
            self.decay_batches = int(saved)
            logging.info(f"--lr-decay-batches 0: {saved} steps, as the resumed run started with")
        super().load_state_dict(state_dict)

    def get_lr(self) -> List[float]:
        if self.batch < self.warmup_batches:
            return [base * (self.batch + 1) / self.warmup_batches for base in self.base_lrs]
        if self.decay_batches is None:
            return list(self.base_lrs)
        span = self.decay_batches - self.warmup_batches
        progress = min(1.0, (self.batch - self.warmup_batches) / span)
        if self.kind == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            factor = (1.0 - progress) ** self.power
        return [self.min_lr + (base - self.min_lr) * factor for base in self.base_lrs]
