"""The transducer beam search of Graves (2012), Algorithm 1, in the form ESPnet and icefall use.

Several symbols may be emitted per frame. For each frame: ``A`` holds hypotheses that may still emit
on this frame, ``B`` those that have consumed it (by emitting blank). The most probable member of
``A`` is expanded: its blank extension goes to ``B``, its best non-blank extensions back to ``A``.
The frame ends once ``B`` holds ``beam`` hypotheses more probable than anything left in ``A``.
One utterance at a time (the expansion order is inherently sequential).
"""

from typing import List

import torch
from torch import nn

from icefall_lite.search.hypothesis import (
    DecodingResult,
    Hypothesis,
    HypothesisList,
    hypothesis_to_result,
)
from icefall_lite.search.transducer_common import (
    check_encoder_out,
    decoder_step,
    initial_context,
    is_stateful,
    joiner_log_probs,
)


@torch.no_grad()
def _beam_search_one(
    model: nn.Module,
    encoder_proj: torch.Tensor,
    beam: int,
    max_sym_per_frame: int,
    length_norm: bool,
) -> DecodingResult:
    """``encoder_proj``: (T, joiner_dim) projected encoder output of one utterance."""
    blank_id = model.decoder.blank_id
    context_size = model.decoder.context_size
    # history -> ((joiner_dim,) projected decoder output, decoder state after the history);
    # a stateless decoder's output depends on the last context_size tokens, a recurrent one's
    # on all of them.
    decoder_cache = {}
    stateful = is_stateful(model)

    def decoder_out_of(hyp: Hypothesis):
        history = tuple(hyp.ys) if stateful else tuple(hyp.ys[-context_size:])
        if history not in decoder_cache:
            out, states = decoder_step(model, [list(history)], [hyp.decoder_state])
            decoder_cache[history] = (out[0], states[0])
        return decoder_cache[history]

    B = HypothesisList()
    B.add(Hypothesis(ys=initial_context(context_size, blank_id), log_prob=0.0))
    for t in range(encoder_proj.size(0)):
        A, B = B, HypothesisList()
        frame = encoder_proj[t : t + 1]
        # A hypothesis' number of emissions on this frame; ys grows by one per emission.
        start_len = {hyp.key: len(hyp.ys) for hyp in A}
        while len(A) > 0:
            y_star = A.get_most_probable()
            A.remove(y_star)
            decoder_out, next_state = decoder_out_of(y_star)
            log_probs = joiner_log_probs(model, frame, decoder_out.unsqueeze(0))[0]
            B.add(
                Hypothesis(
                    ys=y_star.ys,
                    log_prob=y_star.log_prob + float(log_probs[blank_id]),
                    timestamps=y_star.timestamps,
                    decoder_state=y_star.decoder_state,
                )
            )
            origin_len = start_len.get(y_star.key, len(y_star.ys))
            if len(y_star.ys) - origin_len < max_sym_per_frame:
                non_blank = log_probs.clone()
                non_blank[blank_id] = float("-inf")
                values, tokens = non_blank.topk(min(beam, non_blank.numel() - 1))
                for value, token in zip(values.tolist(), tokens.tolist()):
                    new_hyp = Hypothesis(
                        ys=y_star.ys + [token],
                        log_prob=y_star.log_prob + value,
                        timestamps=y_star.timestamps + [t],
                        decoder_state=next_state,
                    )
                    # A hypothesis reached both at the frame's start and by an emission on
                    # it is merged into one: it keeps the smaller allowance, so that no path
                    # through the merged mass emits more than max_sym_per_frame on a frame.
                    start_len[new_hyp.key] = min(start_len.get(new_hyp.key, origin_len), origin_len)
                    A.add(new_hyp)
            if len(A) == 0:
                break
            best_in_A = A.get_most_probable().log_prob
            kept = B.filter(best_in_A)
            if len(kept) >= beam:
                B = kept
                break
        B = B.topk(beam)
    return hypothesis_to_result(B.get_most_probable(length_norm), context_size)


def beam_search(
    model: nn.Module,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    beam: int = 4,
    max_sym_per_frame: int = 10,
    length_norm: bool = True,
) -> List[DecodingResult]:
    """Graves/ESPnet transducer beam search, one utterance after another.

    Args:
      encoder_out: (N, T, encoder_dim).
      encoder_out_lens: (N,) valid frames per utterance.
      beam: hypotheses kept per frame (``--beam-size``).
      max_sym_per_frame: cap on the symbols one hypothesis may emit on one frame (guards against
        endless expansion when blank is improbable everywhere).
      length_norm: pick the final hypothesis by log_prob / len(ys), as icefall does.
    Returns:
      N results in input order.
    """
    check_encoder_out(encoder_out, encoder_out_lens)
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    encoder_proj = model.joiner.encoder_proj(encoder_out)
    return [
        _beam_search_one(model, encoder_proj[i, :n], beam, max_sym_per_frame, length_norm)
        for i, n in enumerate(encoder_out_lens.tolist())
    ]
