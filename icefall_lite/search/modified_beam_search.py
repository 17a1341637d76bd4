"""Modified beam search: at most one symbol per encoder frame, batched over utterances.

Each frame, every hypothesis of a stream is extended by every symbol (blank keeps the hypothesis
as it is); the ``beam`` best extensions of the stream survive, and extensions with the same token
sequence are merged by log-adding their probabilities. Restricting emission to one symbol per frame
is what lets all hypotheses of all streams advance in lock step, so one decoder and one joiner call
per frame serve the whole batch.

For streaming, :func:`modified_beam_search_chunk` advances a list of per-stream
:class:`BeamStream` states over one chunk; :func:`modified_beam_search_step` is the single-frame
step it is built from.

With ``fusion`` (icefall's ``--lm-type ngram --lm-scale``; a token-level LM, see
``icefall_lite.lm.TokenNgramLm``) each hypothesis's score includes ``lm_scale`` times its LM
log-probability; only each hypothesis's ``beam`` best tokens (and blank) are scored by the LM,
which keeps the LM's cost per frame at ``beam * beam`` look-ups.
"""

from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

import torch
from torch import nn

from icefall_lite.search.hypothesis import (
    DecodingResult,
    Hypothesis,
    HypothesisList,
    hypothesis_to_result,
)
from icefall_lite.search.lm_fusion import LmFusion
from icefall_lite.search.transducer_common import (
    check_encoder_out,
    decoder_step,
    initial_context,
    joiner_log_probs,
)


@dataclass
class BeamStream:
    """Decoding state of one stream: its hypotheses and the frames consumed so far."""

    hyps: HypothesisList
    num_frames: int = 0

    def result(
        self, context_size: int, length_norm: bool = True, fusion: Optional[LmFusion] = None
    ) -> DecodingResult:
        if fusion is None:
            return hypothesis_to_result(self.hyps.get_most_probable(length_norm), context_size)
        # With an LM, a finished hypothesis also pays for its end of sentence.
        final = HypothesisList()
        for hyp in self.hyps:
            score = hyp.log_prob + fusion.final(hyp.lm_state)
            final.add(
                Hypothesis(
                    ys=hyp.ys,
                    log_prob=score,
                    timestamps=hyp.timestamps,
                    decoder_state=hyp.decoder_state,
                    lm_state=hyp.lm_state,
                )
            )
        return hypothesis_to_result(final.get_most_probable(length_norm), context_size)


def init_beam_streams(
    model: nn.Module, num_streams: int, fusion: Optional[LmFusion] = None
) -> List[BeamStream]:
    """Fresh states for ``num_streams`` utterances: one empty hypothesis each."""
    context = initial_context(model.decoder.context_size, model.decoder.blank_id)
    lm_state = fusion.initial_state() if fusion is not None else None
    streams = []
    for _ in range(num_streams):
        hyps = HypothesisList()
        hyps.add(Hypothesis(ys=list(context), log_prob=0.0, lm_state=lm_state))
        streams.append(BeamStream(hyps=hyps))
    return streams


@torch.no_grad()
def modified_beam_search_step(
    model: nn.Module,
    encoder_proj_frame: torch.Tensor,
    streams: List[BeamStream],
    beam: int,
    fusion: Optional[LmFusion] = None,
) -> None:
    """Advance each of B streams by one encoder frame (in place).

    Args:
      encoder_proj_frame: (B, joiner_dim) this frame's encoder output after
        ``model.joiner.encoder_proj``, one row per stream.
      streams: B states; ``num_frames`` is the frame index stamped on emitted tokens and is
        incremented.
      beam: hypotheses kept per stream.
      fusion: shallow fusion with a language model (None: acoustic scores only).
    """
    blank_id = model.decoder.blank_id
    context_size = model.decoder.context_size
    flat_hyps: List[Hypothesis] = []
    owner: List[int] = []  # stream index of each flat hypothesis
    for i, stream in enumerate(streams):
        for hyp in stream.hyps:
            flat_hyps.append(hyp)
            owner.append(i)

    decoder_out, next_states = decoder_step(
        model, [h.ys[-context_size:] for h in flat_hyps], [h.decoder_state for h in flat_hyps]
    )
    owner_rows = torch.tensor(owner, device=encoder_proj_frame.device)
    log_probs = joiner_log_probs(model, encoder_proj_frame[owner_rows], decoder_out)
    hyp_log_probs = torch.tensor(
        [h.log_prob for h in flat_hyps], dtype=torch.float64, device=log_probs.device
    )
    # Accumulate in float64 so long utterances do not lose precision in the merge.
    scores = log_probs.double() + hyp_log_probs.unsqueeze(1)  # (H, V)
    if fusion is None:
        candidates_of = _acoustic_candidates(scores, flat_hyps, beam, blank_id)
    else:
        candidates_of = _fused_candidates(scores, flat_hyps, beam, blank_id, fusion)
    start = 0
    for stream in streams:
        num_hyps = len(stream.hyps)
        new_hyps = HypothesisList()
        for score, row, token, lm_state in candidates_of(start, num_hyps):
            new_hyps.add(
                _extended(
                    flat_hyps[row], token, score, stream.num_frames, next_states[row], lm_state
                )
            )
        stream.hyps = new_hyps
        stream.num_frames += 1
        start += num_hyps


# A candidate for a stream's next beam: (score, row of the hypothesis it extends, token or None
# for blank, LM state after it).
Candidate = Tuple[float, int, Optional[int], Any]


def _extended(
    hyp: Hypothesis,
    token: Optional[int],
    score: float,
    frame: int,
    next_state: Any,
    lm_state: Any,
) -> Hypothesis:
    """``hyp`` after blank (``token`` None: same tokens and decoder state) or after ``token``
    emitted at ``frame`` (the decoder's state after it is ``next_state``)."""
    if token is None:
        return Hypothesis(
            ys=hyp.ys,
            log_prob=score,
            timestamps=hyp.timestamps,
            decoder_state=hyp.decoder_state,
            lm_state=hyp.lm_state,
        )
    return Hypothesis(
        ys=hyp.ys + [token],
        log_prob=score,
        timestamps=hyp.timestamps + [frame],
        decoder_state=next_state,
        lm_state=lm_state,
    )


def _acoustic_candidates(
    scores: torch.Tensor, flat_hyps: List[Hypothesis], beam: int, blank_id: int
) -> Callable[[int, int], List[Candidate]]:
    """Without an LM: a stream's ``beam`` best (hypothesis, token) pairs of its rows of
    ``scores`` (H, V), blank included."""
    vocab_size = scores.size(1)

    def candidates(start: int, num_hyps: int) -> List[Candidate]:
        stream_scores = scores[start : start + num_hyps].reshape(-1)
        top_scores, top_indexes = stream_scores.topk(min(beam, stream_scores.numel()))
        chosen = []
        for score, index in zip(top_scores.tolist(), top_indexes.tolist()):
            row, token = start + index // vocab_size, index % vocab_size
            chosen.append(
                (score, row, None if token == blank_id else token, flat_hyps[row].lm_state)
            )
        return chosen

    return candidates


def _fused_candidates(
    scores: torch.Tensor,
    flat_hyps: List[Hypothesis],
    beam: int,
    blank_id: int,
    fusion: LmFusion,
) -> Callable[[int, int], List[Candidate]]:
    """With LM fusion: each hypothesis's ``beam`` best tokens and blank, rescored with the LM,
    compete for the stream's ``beam`` places. ``scores``: (H, V) hypothesis + acoustic
    log-probabilities."""
    k = min(beam, scores.size(1))
    top_scores, top_tokens = scores.topk(k, dim=1)
    top_scores, top_tokens = top_scores.tolist(), top_tokens.tolist()
    blank_scores = scores[:, blank_id].tolist()

    def candidates(start: int, num_hyps: int) -> List[Candidate]:
        found: List[Candidate] = []
        for h in range(start, start + num_hyps):
            hyp = flat_hyps[h]
            found.append((blank_scores[h], h, None, hyp.lm_state))
            for score, token in zip(top_scores[h], top_tokens[h]):
                if token != blank_id:
                    delta, state = fusion.extend(hyp.lm_state, token)
                    found.append((score + delta, h, token, state))
        found.sort(key=lambda c: c[0], reverse=True)
        return found[:beam]

    return candidates


@torch.no_grad()
def modified_beam_search_chunk(
    model: nn.Module,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    streams: List[BeamStream],
    beam: int = 4,
    fusion: Optional[LmFusion] = None,
) -> None:
    """Advance each stream over its frames of a chunk (in place).

    Args:
      encoder_out: (B, T, encoder_dim), one row per stream.
      encoder_out_lens: (B,) valid frames per row; a stream takes part only in its own frames.
      streams: B states.
      beam: hypotheses kept per stream.
      fusion: shallow fusion with a language model.
    """
    check_encoder_out(encoder_out, encoder_out_lens)
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    if len(streams) != encoder_out.size(0):
        raise ValueError(f"got {len(streams)} streams for a batch of {encoder_out.size(0)}")
    encoder_proj = model.joiner.encoder_proj(encoder_out)
    lens = encoder_out_lens.tolist()
    for t in range(encoder_out.size(1)):
        active = [i for i, n in enumerate(lens) if t < n]
        if not active:
            break
        rows = torch.tensor(active, device=encoder_out.device)
        modified_beam_search_step(
            model, encoder_proj[rows, t], [streams[i] for i in active], beam, fusion
        )


def modified_beam_search(
    model: nn.Module,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    beam: int = 4,
    length_norm: bool = True,
    fusion: Optional[LmFusion] = None,
) -> List[DecodingResult]:
    """Modified beam search over whole utterances, batched.

    Args:
      encoder_out: (N, T, encoder_dim).
      encoder_out_lens: (N,) valid frames per utterance (any order).
      beam: hypotheses kept per utterance (``--beam-size``).
      length_norm: pick the final hypothesis by log_prob / len(ys), as icefall does.
      fusion: shallow fusion with a (token-level) language model, ``--lm-scale``.
    Returns:
      N results in input order.
    """
    streams = init_beam_streams(model, encoder_out.size(0), fusion)
    modified_beam_search_chunk(model, encoder_out, encoder_out_lens, streams, beam, fusion)
    return [s.result(model.decoder.context_size, length_norm, fusion) for s in streams]
