"""Small pieces every transducer search shares: start context, decoder and joiner calls.

The searches talk to the model only through ``model.decoder`` (``Decoder``: ``vocab_size``,
``blank_id``, ``context_size``, ``forward(y, need_pad)``) and ``model.joiner`` (``Joiner``:
``encoder_proj``, ``decoder_proj``, ``forward(enc, dec, project_input)``), so any module with those
two attributes (the offline ``AsrModel``, a streaming model, a test stand-in) can be searched.

Two kinds of decoder: a stateless one sees the last ``context_size`` tokens only; a recurrent
one (``decoder.is_stateful``, e.g. ``LstmDecoder``) has a state summing up the whole history and
a ``step(tokens, state)`` call. The searches treat both through :func:`decoder_step`: each
hypothesis carries the decoder state *before* its last token (``None`` for a stateless decoder,
or for the initial state), and the call returns the state *after* it, which the hypotheses
extended from it carry. Hypotheses with equal token sequences have equal states, so merging
them (beam searches) keeps either.
"""

import itertools
from typing import Any, List, Optional, Sequence, Tuple

import torch
from torch import nn


def initial_context(context_size: int, blank_id: int) -> List[int]:
    """Decoder history at the start of an utterance, icefall's convention: ``context_size - 1``
    empty positions (-1, embedded as zeros, like the left padding used in training) then blank."""
    return [-1] * (context_size - 1) + [blank_id]


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer; CPU for a module with neither (e.g. a
    wrapper around ONNX sessions)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def decoder_outputs(model: nn.Module, contexts: Sequence[Sequence[int]]) -> torch.Tensor:
    """Run the decoder on a batch of histories and project for the joiner.

    Args:
      contexts: B histories, each the last ``context_size`` tokens.
    Returns:
      (B, joiner_dim) projected decoder output.
    """
    device = model_device(model)
    y = torch.tensor(contexts, dtype=torch.int64, device=device).reshape(len(contexts), -1)
    decoder_out = model.decoder(y, need_pad=False)  # (B, 1, decoder_dim)
    return model.joiner.decoder_proj(decoder_out.squeeze(1))


def is_stateful(model: nn.Module) -> bool:
    """Whether the model's decoder is recurrent (its state lives in the hypotheses)."""
    return bool(getattr(model.decoder, "is_stateful", False))


def check_stateless(model: nn.Module, method: str) -> None:
    """A one-line error for a search whose states are decoder histories (fast beam search's
    lattice merges paths by their last ``context_size`` tokens), given a recurrent decoder."""
    if is_stateful(model):
        raise ValueError(
            f"--decoding-method {method} needs a stateless decoder (its lattice states are the "
            f"last tokens); this model's decoder is recurrent: use greedy_search, beam_search "
            f"or modified_beam_search"
        )


def decoder_step(
    model: nn.Module,
    contexts: Sequence[Sequence[int]],
    states: Optional[Sequence[Any]] = None,
) -> Tuple[torch.Tensor, List[Any]]:
    """The projected decoder output of B histories, and the decoder state after each.

    Args:
      contexts: B histories, each at least its last ``context_size`` tokens (a recurrent
        decoder reads the last one).
      states: a recurrent decoder's state before each history's last token (``None``: the
        initial state); ignored (and may be omitted) for a stateless decoder.
    Returns:
      (B, joiner_dim) projected output; B states after the histories (all ``None`` for a
      stateless decoder).
    """
    if not is_stateful(model):
        return decoder_outputs(model, contexts), [None] * len(contexts)
    decoder = model.decoder
    device = model_device(model)
    tokens = torch.tensor([c[-1] for c in contexts], dtype=torch.int64, device=device)
    states = list(states) if states is not None else [None] * len(contexts)
    if all(state is None for state in states):
        batched = None
    else:
        zero = decoder.init_state(1, device)
        filled = [zero if state is None else state for state in states]
        # Each part of a state is (layers, 1, hidden): the batch is axis 1.
        batched = tuple(torch.cat(parts, dim=1) for parts in zip(*filled))
    decoder_out, new_state = decoder.step(tokens, batched)
    per_row = [tuple(part[:, i : i + 1] for part in new_state) for i in range(len(contexts))]
    return model.joiner.decoder_proj(decoder_out), per_row


def joiner_log_probs(
    model: nn.Module, encoder_proj_out: torch.Tensor, decoder_proj_out: torch.Tensor
) -> torch.Tensor:
    """Log-softmax of the joiner over the vocabulary.

    Args:
      encoder_proj_out: (B, joiner_dim), already passed through ``joiner.encoder_proj``.
      decoder_proj_out: (B, joiner_dim), already passed through ``joiner.decoder_proj``.
    Returns:
      (B, vocab_size) float32 log-probabilities.
    """
    logits = model.joiner(encoder_proj_out, decoder_proj_out, project_input=False)
    return logits.float().log_softmax(dim=-1)


def check_encoder_out(encoder_out: torch.Tensor, encoder_out_lens: torch.Tensor) -> None:
    """Raise a one-line error if the (N, T, C) output and its (N,) lengths do not fit."""
    if encoder_out.ndim != 3:
        raise ValueError(f"encoder_out must be (N, T, C), got shape {tuple(encoder_out.shape)}")
    if encoder_out_lens.shape != (encoder_out.size(0),):
        raise ValueError(
            f"encoder_out_lens must be ({encoder_out.size(0)},), "
            f"got shape {tuple(encoder_out_lens.shape)}"
        )
    if encoder_out_lens.numel() and int(encoder_out_lens.max()) > encoder_out.size(1):
        raise ValueError(
            f"encoder_out_lens max {int(encoder_out_lens.max())} exceeds T={encoder_out.size(1)}"
        )
