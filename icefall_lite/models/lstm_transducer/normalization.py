"""Per-utterance feature normalisation (what the model is trained with).

Each mel bin of an utterance is shifted and scaled to zero mean and unit variance over the
utterance's valid frames, as the DALI pipeline of the reference training scripts does. This
needs the whole utterance; streaming decoding replaces it with the running statistics of
:mod:`icefall_lite.streaming.normalization`.
"""

import torch
from torch import Tensor, nn

__all__ = ["UtteranceNormalization"]


class UtteranceNormalization(nn.Module):
    """``(x - mean) / sqrt(var + eps)`` per utterance and bin, over the valid frames.

    Padding frames are set to zero (the normalised mean) so they do not depend on the padding
    value. ``enabled=False`` makes this the identity (features normalised beforehand).
    """

    def __init__(self, enabled: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        self.enabled = enabled
        self.eps = eps

    def forward(self, x: Tensor, x_lens: Tensor) -> Tensor:
        """(N, T, F) features, (N,) valid frames -> (N, T, F) normalised features."""
        if not self.enabled:
            return x
        mask = (torch.arange(x.size(1), device=x.device)[None, :] < x_lens[:, None]).unsqueeze(-1)
        count = x_lens.clamp(min=1).to(x.dtype)[:, None, None]
        mean = (x * mask).sum(dim=1, keepdim=True) / count
        var = (((x - mean) * mask) ** 2).sum(dim=1, keepdim=True) / count
        return (x - mean) / torch.sqrt(var + self.eps) * mask
