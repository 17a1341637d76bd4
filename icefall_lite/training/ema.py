"""An exponential moving average of the model's weights (``--ema``), for validation and the
checkpoints, as the reference RNN-T scripts keep.

After optimizer step n (counted from 1) ``ema = d * ema + (1 - d) * weights`` with
``d = min(decay, n / (n + 9))`` (float32, on the model's device); integer buffers are copied.
The ramp keeps the random initial weights out of the average of a short run: with a constant
0.998 they would still weigh 0.998^750 = 22 % after 750 steps (measured on the synth corpus:
an EMA model that emits almost nothing). Validation runs on the average; every training
checkpoint stores it (``"ema_state"``: decay, update count, weights), and a resumed run
continues it exactly.
"""

import copy
from typing import Any, Dict

import torch
from torch import nn

__all__ = ["ModelEma", "joint_net_lr_factor"]


class ModelEma:
    """The running average of a model.

    Args:
      model: the model being trained (not DDP-wrapped); copied at construction.
      decay: weight of the old average per step, in (0, 1).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"--ema must be in (0, 1) (or 0 to disable), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.module = copy.deepcopy(model).float().eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the current weights of ``model`` into the average."""
        self.num_updates += 1
        decay = min(self.decay, self.num_updates / (self.num_updates + 9))
        own = self.module.state_dict()
        for name, value in model.state_dict().items():
            target = own[name]
            if target.dtype.is_floating_point:
                target.mul_(decay).add_(value.detach().to(target.dtype), alpha=1 - decay)
            else:
                target.copy_(value)

    def state_dict(self) -> Dict[str, Any]:
        return {
            "decay": self.decay,
            "num_updates": self.num_updates,
            "model": self.module.state_dict(),
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.decay = float(state["decay"])
        # Checkpoints written before the ramp: past it.
        self.num_updates = int(state.get("num_updates", 10**9))
        self.module.load_state_dict(state["model"], strict=True)


def joint_net_lr_factor(vocab_size: int, given: float = None) -> float:
    """``--joint-net-lr-factor``: the given value, else ``1 / sqrt(vocab_size / 1024)`` for a
    vocabulary larger than 1024 (large output layers make the joint network's gradients
    explode, as the reference observed) and 1 otherwise."""
    if given is not None:
        if given <= 0:
            raise ValueError(f"--joint-net-lr-factor must be positive, got {given}")
        return float(given)
    return (vocab_size / 1024) ** -0.5 if vocab_size > 1024 else 1.0
