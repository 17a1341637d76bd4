"""Stacking per-stream encoder states into a batch and splitting them again.

A streaming encoder's state is a list of tensors; each tensor has its batch axis at a fixed
position, which the encoder names in its ``state_batch_dims`` (a model family's own layout, e.g.
``models.zipformer.streaming.zipformer2_state_batch_dims``). Streams join and leave the batch
between chunks, so each stream keeps its own batch-of-one state and the decode loop stacks the
states of the streams decoded together, runs one chunk, and unstacks the result.
"""

from typing import List, Sequence

import torch
from torch import Tensor

__all__ = ["stack_states", "unstack_states"]


def stack_states(state_list: Sequence[List[Tensor]], batch_dims: Sequence[int]) -> List[Tensor]:
    """Concatenate the states of several streams along each tensor's batch axis.

    Args:
      state_list: one state (a list of tensors, any batch size) per stream.
      batch_dims: the batch axis of each tensor of a state.
    Returns:
      one state whose batch is the streams' batches in order.
    """
    if not state_list:
        raise ValueError("stack_states: no states to stack")
    for i, state in enumerate(state_list):
        if len(state) != len(batch_dims):
            raise ValueError(
                f"stack_states: stream {i} has {len(state)} state tensors, "
                f"expected {len(batch_dims)}"
            )
    return [
        torch.cat([state[k] for state in state_list], dim=dim) for k, dim in enumerate(batch_dims)
    ]


def unstack_states(states: Sequence[Tensor], batch_dims: Sequence[int]) -> List[List[Tensor]]:
    """Split a batched state into one batch-of-one state per stream (inverse of
    :func:`stack_states` for streams of batch size 1)."""
    if len(states) != len(batch_dims):
        raise ValueError(
            f"unstack_states: got {len(states)} state tensors, expected {len(batch_dims)}"
        )
    batch_size = states[0].size(batch_dims[0])
    per_tensor = [s.split(1, dim=dim) for s, dim in zip(states, batch_dims)]
    for s, dim in zip(states, batch_dims):
        if s.size(dim) != batch_size:
            raise ValueError(
                f"unstack_states: batch sizes differ ({s.size(dim)} vs {batch_size}) "
                f"for a tensor of shape {tuple(s.shape)}"
            )
    return [[parts[n] for parts in per_tensor] for n in range(batch_size)]
