"""The CTC loss every model family with a CTC head computes (blank id 0, summed over the batch)."""

from typing import List

import torch
from torch import Tensor

__all__ = ["ctc_loss_sum", "flatten_targets"]


def flatten_targets(y: List[List[int]]) -> Tensor:
    """N token-id lists -> their (sum of lengths,) int64 concatenation (CTC's target layout)."""
    return torch.tensor([t for seq in y for t in seq], dtype=torch.int64)


def ctc_loss_sum(
    log_probs: Tensor, log_prob_lens: Tensor, targets: Tensor, target_lengths: Tensor
) -> Tensor:
    """CTC loss summed over the batch.

    Args:
      log_probs: (N, T, V) log-probabilities, blank = 0.
      log_prob_lens: (N,) valid frames.
      targets: (sum(target_lengths),) concatenated token ids (no blanks).
      target_lengths: (N,).
    Returns:
      scalar (float32; computed in float32 under autocast, the recursion is delicate).
    """
    return torch.nn.functional.ctc_loss(
        log_probs=log_probs.permute(1, 0, 2).float(),  # (T, N, V)
        targets=targets.cpu(),
        input_lengths=log_prob_lens.cpu(),
        target_lengths=target_lengths.cpu(),
        blank=0,
        reduction="sum",
    )
