"""An exponential moving average of the model's weights (``--ema``), for validation and the
checkpoints, as the reference RNN-T scripts keep.

After each optimizer step ``ema = decay * ema + (1 - decay) * weights`` (float32, on the model's
device); integer buffers are copied. Validation runs on the average; every training checkpoint
stores it (``"ema"``), and a resumed run continues it exactly.
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
        self.module = copy.deepcopy(model).float().eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the current weights of ``model`` into the average."""
        own = self.module.state_dict()
        for name, value in model.state_dict().items():
            target = own[name]
            if target.dtype.is_floating_point:
                target.mul_(self.decay).add_(value.detach().to(target.dtype), alpha=1 - self.decay)
            else:
                target.copy_(value)

    def state_dict(self) -> Dict[str, Any]:
        return {"decay": self.decay, "model": self.module.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.decay = float(state["decay"])
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
