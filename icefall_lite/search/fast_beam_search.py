"""Fast beam search: one symbol per frame, pruned like k2's ``RnntDecodingStreams``, over the
trivial graph (every token allowed after every token), producing a lattice.

A search state is a decoder history (the last ``context_size`` tokens); hypotheses reaching the same
history on the same frame share the state and keep the better (Viterbi) score, while every surviving
arc is kept in the lattice. Pruning per stream and frame, as in k2:

1. an arc leaving a state with a non-blank token survives only if its score after the arc is at
   least the best state score of the stream on the previous frame minus ``beam``; blank arcs always
   survive, so a stream can never lose all its states;
2. of the destination states, only those within ``beam`` of the stream's best and among its
   ``max_states`` best survive (k2 prunes states, then contexts with ``max_contexts``; with the
   trivial graph the two coincide, so the tighter limit applies).

The one-best result is the best path of the lattice. ``fast_beam_search_nbest`` samples
``num_paths`` paths from the lattice (scores scaled by ``nbest_scale``), and returns the distinct
token sequence whose best alignment in the lattice scores highest, as icefall does.

When k2 is installed (``ICEFALL_LITE_FAST_BEAM_BACKEND`` unset or ``k2``) the one-best search runs
through ``k2.RnntDecodingStreams``; otherwise (or with the variable set to ``builtin``) through the
implementation here. Streaming: :func:`fast_beam_search_chunk` advances :class:`FastBeamStream`
states chunk by chunk, :func:`fast_beam_search_step` by one frame.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import torch
from torch import nn

from icefall_lite.search.hypothesis import DecodingResult
from icefall_lite.search.transducer_common import (
    check_encoder_out,
    check_stateless,
    initial_context,
    model_device,
)

# One lattice frame of a stream: (src state, dst state, token, arc log-prob), each of shape (A,).
LatticeFrame = Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class FastBeamStream:
    """Decoding state of one stream.

    Attributes:
      contexts: (S, context_size) decoder history of each active state.
      scores: (S,) float64 Viterbi score of each active state.
      frames: one :data:`LatticeFrame` per decoded frame; ``src`` indexes the states of that
        frame, ``dst`` those of the next.
      frame_scores: (S_t,) state scores at the start of each decoded frame (for back-tracking).
      frame_contexts: (S_t, context_size) state histories at the start of each decoded frame.
    """

    contexts: torch.Tensor
    scores: torch.Tensor
    frames: List[LatticeFrame] = field(default_factory=list)
    frame_scores: List[torch.Tensor] = field(default_factory=list)
    frame_contexts: List[torch.Tensor] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def result(self, blank_id: int = 0) -> DecodingResult:
        """The best path so far (see :func:`best_path`)."""
        return best_path(self, blank_id)


def init_fast_beam_streams(
    model: nn.Module, num_streams: int, device: Optional[torch.device] = None
) -> List[FastBeamStream]:
    """Fresh states for ``num_streams`` utterances (one start state each)."""
    check_stateless(model, "fast_beam_search")
    if device is None:
        device = model_device(model)
    context = initial_context(model.decoder.context_size, model.decoder.blank_id)
    return [
        FastBeamStream(
            contexts=torch.tensor([context], dtype=torch.int64, device=device),
            scores=torch.zeros(1, dtype=torch.float64, device=device),
        )
        for _ in range(num_streams)
    ]


def _rank_within_groups(
    values: torch.Tensor, groups: torch.Tensor, num_groups: int
) -> torch.Tensor:
    """0 for the largest value of each group, 1 for the next, ... (groups given as ids)."""
    order = torch.argsort(values, descending=True, stable=True)
    order = order[torch.argsort(groups[order], stable=True)]
    counts = torch.bincount(groups, minlength=num_groups)
    group_start = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=values.device) - group_start[groups[order]]
    return rank


def _pack_contexts(contexts: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(..., context_size) histories of token ids >= -1 -> (...,) int64, one number each
    (digits in base vocab_size + 1, ids shifted by one so that -1 becomes 0)."""
    base = vocab_size + 1
    packed = torch.zeros(contexts.shape[:-1], dtype=torch.int64, device=contexts.device)
    for column in range(contexts.size(-1)):
        packed = packed * base + (contexts[..., column] + 1)
    return packed


def _unique_rows(rows: torch.Tensor, vocab_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(rows, dim=0, return_inverse=True)`` for (A, 1 + context_size) rows of
    (stream, token ids >= -1). Rows are packed into one int64 each when they fit, because 1-D
    unique is far faster than ``unique(dim=0)``."""
    base = vocab_size + 1
    num_streams = int(rows[:, 0].max()) + 1 if rows.numel() else 1
    if num_streams * base ** (rows.size(1) - 1) >= 2**62:
        return torch.unique(rows, dim=0, return_inverse=True)
    packed = rows[:, 0] * base ** (rows.size(1) - 1) + _pack_contexts(rows[:, 1:], vocab_size)
    unique_packed, inverse = torch.unique(packed, sorted=True, return_inverse=True)
    unique_rows = torch.empty(
        unique_packed.numel(), rows.size(1), dtype=rows.dtype, device=rows.device
    )
    rest = unique_packed
    for column in range(rows.size(1) - 1, 0, -1):
        unique_rows[:, column] = rest % base - 1
        rest = torch.div(rest, base, rounding_mode="floor")
    unique_rows[:, 0] = rest
    return unique_rows, inverse


@torch.no_grad()
def fast_beam_search_step(
    model: nn.Module,
    encoder_proj_frame: torch.Tensor,
    streams: List[FastBeamStream],
    beam: float,
    max_states: int,
    max_contexts: int,
    temperature: float = 1.0,
) -> None:
    """Advance B streams by one frame (in place).

    Args:
      encoder_proj_frame: (B, joiner_dim) frame after ``model.joiner.encoder_proj``.
      streams: B states.
      beam: log-probability beam (k2's ``beam``).
      max_states, max_contexts: most states kept per stream and frame.
      temperature: logits are divided by it before the log-softmax.
    """
    blank_id = model.decoder.blank_id
    device = encoder_proj_frame.device
    num_streams = len(streams)
    counts = torch.tensor([s.scores.numel() for s in streams], device=device)
    owner = torch.repeat_interleave(torch.arange(num_streams, device=device), counts)
    contexts = torch.cat([s.contexts for s in streams])  # (S, c)
    scores = torch.cat([s.scores for s in streams])  # (S,)

    decoder_out = model.joiner.decoder_proj(model.decoder(contexts, need_pad=False).squeeze(1))
    logits = model.joiner(encoder_proj_frame[owner], decoder_out, project_input=False)
    log_probs = (logits.float() / temperature).log_softmax(dim=-1).double()  # (S, V)

    neg_inf = torch.tensor(float("-inf"), dtype=torch.float64, device=device)
    stream_best = neg_inf.expand(num_streams).scatter_reduce(0, owner, scores, "amax")
    after_arc = scores.unsqueeze(1) + log_probs  # (S, V)
    keep = after_arc >= (stream_best[owner] - beam).unsqueeze(1)
    keep[:, blank_id] = True
    src, token = keep.nonzero(as_tuple=True)
    arc_score = log_probs[src, token]
    arc_total = after_arc[src, token]
    arc_owner = owner[src]

    dst_contexts = contexts[src].clone()
    emits = token != blank_id
    dst_contexts[emits] = torch.cat(
        [dst_contexts[emits, 1:], token[emits].unsqueeze(1)], dim=1
    )  # shift the history by one token
    # Unique (stream, history) rows, sorted lexicographically: states come out grouped by stream.
    dst_keys, arc_dst = _unique_rows(
        torch.cat([arc_owner.unsqueeze(1), dst_contexts], dim=1), model.decoder.vocab_size
    )
    dst_score = neg_inf.expand(dst_keys.size(0)).scatter_reduce(0, arc_dst, arc_total, "amax")
    dst_owner = dst_keys[:, 0]

    dst_best = neg_inf.expand(num_streams).scatter_reduce(0, dst_owner, dst_score, "amax")
    rank = _rank_within_groups(dst_score, dst_owner, num_streams)
    keep_dst = (dst_score >= dst_best[dst_owner] - beam) & (rank < min(max_states, max_contexts))
    kept_per_stream = torch.bincount(dst_owner[keep_dst], minlength=num_streams)
    # Local index of each kept destination state within its stream.
    new_global = torch.cumsum(keep_dst.long(), 0) - 1
    stream_offset = torch.cumsum(kept_per_stream, 0) - kept_per_stream
    dst_local = new_global - stream_offset[dst_owner]

    keep_arc = keep_dst[arc_dst]
    src_offset = torch.cumsum(counts, 0) - counts
    src_local = src - src_offset[arc_owner]
    for i, stream in enumerate(streams):
        arcs = keep_arc & (arc_owner == i)
        stream.frame_scores.append(stream.scores)
        stream.frame_contexts.append(stream.contexts)
        stream.frames.append(
            (src_local[arcs], dst_local[arc_dst[arcs]], token[arcs], arc_score[arcs])
        )
        states = keep_dst & (dst_owner == i)
        stream.contexts = dst_keys[states, 1:]
        stream.scores = dst_score[states]


@torch.no_grad()
def fast_beam_search_chunk(
    model: nn.Module,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    streams: List[FastBeamStream],
    beam: float = 20.0,
    max_states: int = 64,
    max_contexts: int = 8,
    temperature: float = 1.0,
) -> None:
    """Advance each stream over its frames of a chunk (in place).

    Args:
      encoder_out: (B, T, encoder_dim), one row per stream.
      encoder_out_lens: (B,) valid frames per row.
    """
    check_encoder_out(encoder_out, encoder_out_lens)
    if len(streams) != encoder_out.size(0):
        raise ValueError(f"got {len(streams)} streams for a batch of {encoder_out.size(0)}")
    if beam <= 0 or max_states < 1 or max_contexts < 1:
        raise ValueError(
            f"need beam > 0, max_states >= 1, max_contexts >= 1; "
            f"got {beam}, {max_states}, {max_contexts}"
        )
    encoder_proj = model.joiner.encoder_proj(encoder_out)
    lens = encoder_out_lens.tolist()
    for t in range(encoder_out.size(1)):
        active = [i for i, n in enumerate(lens) if t < n]
        if not active:
            break
        rows = torch.tensor(active, device=encoder_out.device)
        fast_beam_search_step(
            model,
            encoder_proj[rows, t],
            [streams[i] for i in active],
            beam,
            max_states,
            max_contexts,
            temperature,
        )


def best_path(stream: FastBeamStream, blank_id: int) -> DecodingResult:
    """Viterbi back-trace of the stream's lattice from its best current state."""
    if not stream.frames:
        return DecodingResult(tokens=[], timestamps=[], score=0.0)
    state = int(torch.argmax(stream.scores))
    score = float(stream.scores[state])
    tokens: List[int] = []
    timestamps: List[int] = []
    for t in range(len(stream.frames) - 1, -1, -1):
        src, dst, token, arc_score = stream.frames[t]
        into = (dst == state).nonzero(as_tuple=True)[0]
        via = into[torch.argmax(stream.frame_scores[t][src[into]] + arc_score[into])]
        if int(token[via]) != blank_id:
            tokens.append(int(token[via]))
            timestamps.append(t)
        state = int(src[via])
    return DecodingResult(tokens=tokens[::-1], timestamps=timestamps[::-1], score=score)


def _k2_or_none():
    backend = os.environ.get("ICEFALL_LITE_FAST_BEAM_BACKEND", "")
    if backend == "builtin":
        return None
    try:
        import k2  # noqa: F401  (optional, compiled; not installable everywhere)
    except ImportError:
        if backend == "k2":
            raise RuntimeError("ICEFALL_LITE_FAST_BEAM_BACKEND=k2 but k2 cannot be imported")
        return None
    return k2


def _fast_beam_search_k2(
    k2,
    model: nn.Module,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    beam: float,
    max_states: int,
    max_contexts: int,
    temperature: float,
) -> List[DecodingResult]:
    """One-best fast beam search through k2's RNN-T decoding streams and shortest path."""
    blank_id = model.decoder.blank_id
    vocab_size = model.decoder.vocab_size
    device = encoder_out.device
    graph = k2.trivial_graph(vocab_size - 1, device=device)
    config = k2.RnntDecodingConfig(
        vocab_size=vocab_size,
        decoder_history_len=model.decoder.context_size,
        beam=beam,
        max_contexts=max_contexts,
        max_states=max_states,
    )
    streams = k2.RnntDecodingStreams(
        [k2.RnntDecodingStream(graph) for _ in range(encoder_out.size(0))], config
    )
    encoder_proj = model.joiner.encoder_proj(encoder_out)
    for t in range(encoder_out.size(1)):
        shape, contexts = streams.get_contexts()
        decoder_out = model.joiner.decoder_proj(
            model.decoder(contexts.to(torch.int64), need_pad=False).squeeze(1)
        )
        frame = encoder_proj[:, t].index_select(0, shape.row_ids(1).to(torch.int64))
        logits = model.joiner(frame, decoder_out, project_input=False)
        streams.advance((logits.float() / temperature).log_softmax(dim=-1))
    streams.terminate_and_flush_to_streams()
    lattice = streams.format_output(encoder_out_lens.tolist())
    best = k2.shortest_path(lattice, use_double_scores=True)
    scores = best.get_tot_scores(use_double_scores=True, log_semiring=False).tolist()
    results = []
    for i in range(encoder_out.size(0)):
        labels = best[i].labels.tolist()  # one arc per frame, then the final arc (-1)
        tokens, timestamps = [], []
        for t, label in enumerate(labels):
            if label not in (blank_id, -1):
                tokens.append(label)
                timestamps.append(t)
        results.append(DecodingResult(tokens=tokens, timestamps=timestamps, score=scores[i]))
    return results


def fast_beam_search(
    model: nn.Module,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    beam: float = 20.0,
    max_states: int = 64,
    max_contexts: int = 8,
    temperature: float = 1.0,
) -> List[DecodingResult]:
    """Fast beam search, one-best (icefall's ``fast_beam_search_one_best`` with a trivial graph).

    Args:
      encoder_out: (N, T, encoder_dim).
      encoder_out_lens: (N,) valid frames per utterance.
      beam, max_states, max_contexts: pruning settings (``--beam``, ``--max-states``,
        ``--max-contexts``).
      temperature: softmax temperature of the joiner output.
    Returns:
      N results in input order; ``score`` is the best path's log-probability.
    """
    check_encoder_out(encoder_out, encoder_out_lens)
    check_stateless(model, "fast_beam_search")
    k2 = _k2_or_none()
    if k2 is not None:
        logging.debug("fast_beam_search: using k2")
        return _fast_beam_search_k2(
            k2, model, encoder_out, encoder_out_lens, beam, max_states, max_contexts, temperature
        )
    streams = init_fast_beam_streams(model, encoder_out.size(0), encoder_out.device)
    fast_beam_search_chunk(
        model, encoder_out, encoder_out_lens, streams, beam, max_states, max_contexts, temperature
    )
    return [best_path(s, model.decoder.blank_id) for s in streams]


def _num_states_after(stream: FastBeamStream, t: int) -> int:
    """Number of states the arcs of frame ``t`` lead into."""
    if t + 1 < len(stream.frames):
        return stream.frame_scores[t + 1].numel()
    return stream.scores.numel()


def _log_forward(stream: FastBeamStream, scale: float) -> List[torch.Tensor]:
    """Log-semiring forward scores of the lattice with arc scores times ``scale``: one (S_t,)
    tensor per frame boundary (T + 1 of them)."""
    alphas = [torch.zeros(1, dtype=torch.float64, device=stream.scores.device)]
    for t, (src, dst, _, arc_score) in enumerate(stream.frames):
        num_dst = _num_states_after(stream, t)
        through = alphas[-1][src] + scale * arc_score
        peak = torch.full((num_dst,), float("-inf"), dtype=torch.float64, device=through.device)
        peak = peak.scatter_reduce(0, dst, through, "amax")
        total = torch.zeros(num_dst, dtype=torch.float64, device=through.device)
        total = total.index_add(0, dst, torch.exp(through - peak[dst]))
        alphas.append(peak + torch.log(total))
    return alphas


def _sample_paths(
    stream: FastBeamStream, num_paths: int, scale: float, generator: torch.Generator
) -> List[Tuple[Tuple[int, ...], List[int], float]]:
    """Draw ``num_paths`` paths from the posterior of the scaled lattice; returns each path's
    token sequence, timestamps and (unscaled) score."""
    alphas = _log_forward(stream, scale)

    def draw(weights: torch.Tensor) -> torch.Tensor:  # (P, K) log-weights -> (P,) choices
        gumbel = -torch.log(-torch.log(torch.rand(weights.shape, generator=generator).double()))
        return torch.argmax(weights + gumbel.to(weights.device), dim=1)

    state = draw(alphas[-1].unsqueeze(0).expand(num_paths, -1))
    num_frames = len(stream.frames)
    chosen_tokens = torch.empty(num_paths, num_frames, dtype=torch.int64)
    path_scores = torch.zeros(num_paths, dtype=torch.float64)
    for t in range(num_frames - 1, -1, -1):
        src, dst, token, arc_score = stream.frames[t]
        weights = alphas[t][src] + scale * arc_score  # (A,)
        weights = torch.where(dst.unsqueeze(0) == state.unsqueeze(1), weights, float("-inf"))
        arc = draw(weights)
        chosen_tokens[:, t] = token[arc].cpu()
        path_scores += arc_score[arc].cpu()
        state = src[arc]
    paths = []
    for row, score in zip(chosen_tokens.tolist(), path_scores.tolist()):
        frames = [t for t, tok in enumerate(row) if tok != 0]
        paths.append((tuple(row[t] for t in frames), frames, score))
    return paths


def _best_alignment_scores(
    stream: FastBeamStream,
    sequences: List[Tuple[int, ...]],
    vocab_size: int,
    blank_id: int,
) -> torch.Tensor:
    """For each token sequence, the score of its best path through the lattice (tropical).

    A lattice state is a decoder history, so "seq k with p tokens emitted" can only be in the
    state whose history is the last ``context_size`` tokens of ``seq_k[:p]``: the dynamic
    programme runs over (k, p) pairs, looking up that state on each frame.

    Returns:
      (K,) float64; -inf where the lattice has no path with that sequence.
    """
    device = stream.scores.device
    num = len(sequences)
    max_len = max(len(s) for s in sequences)
    context_size = stream.contexts.size(1)
    start = initial_context(context_size, blank_id)
    padded = torch.tensor(
        [start + list(s) + [blank_id] * (max_len - len(s)) for s in sequences],
        dtype=torch.int64,
        device=device,
    )  # (K, context_size + L)
    tokens = padded[:, context_size:]  # (K, L): the token emitted when moving p -> p + 1
    lengths = torch.tensor([len(s) for s in sequences], device=device)
    # History after p tokens: padded[k, p : p + context_size]
    history_keys = _pack_contexts(padded.unfold(1, context_size, 1), vocab_size)  # (K, L + 1)
    can_advance = torch.arange(max_len, device=device).unsqueeze(0) < lengths.unsqueeze(1)

    alpha = torch.full((num, max_len + 1), float("-inf"), dtype=torch.float64, device=device)
    alpha[:, 0] = 0.0
    for t, (src, _, token, arc_score) in enumerate(stream.frames):
        state_keys = _pack_contexts(stream.frame_contexts[t], vocab_size)  # (S_t,)
        sorted_keys, order = torch.sort(state_keys)
        position = torch.searchsorted(sorted_keys, history_keys).clamp(max=len(sorted_keys) - 1)
        present = sorted_keys[position] == history_keys
        state = order[position]  # (K, L + 1), meaningful where present
        # Dense (state, token) -> arc score table of this frame; -inf where no arc survived.
        table = torch.full(
            (state_keys.numel(), vocab_size), float("-inf"), dtype=torch.float64, device=device
        )
        table[src, token] = arc_score
        stay = alpha + torch.where(present, table[state, blank_id], float("-inf"))
        move = alpha[:, :-1] + torch.where(
            present[:, :-1] & can_advance, table[state[:, :-1], tokens], float("-inf")
        )
        alpha = stay
        alpha[:, 1:] = torch.maximum(alpha[:, 1:], move)
    return alpha.gather(1, lengths.unsqueeze(1)).squeeze(1)


@torch.no_grad()
def fast_beam_search_nbest(
    model: nn.Module,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    beam: float = 20.0,
    max_states: int = 64,
    max_contexts: int = 8,
    num_paths: int = 200,
    nbest_scale: float = 0.5,
    temperature: float = 1.0,
    seed: int = 0,
) -> List[DecodingResult]:
    """Fast beam search, then pick among ``num_paths`` sampled paths (icefall's
    ``fast_beam_search_nbest``): the distinct token sequence whose best lattice path scores highest.

    Always runs on the built-in lattice (k2's lattices are not used for this one).

    Args:
      num_paths: paths sampled per utterance (``--num-paths``).
      nbest_scale: arc scores are multiplied by it before sampling (``--nbest-scale``); smaller
        values give more diverse paths.
      seed: seed of the sampler, so results are reproducible.
    Returns:
      N results in input order; ``score`` is the best path score of the chosen sequence.
    """
    if model.decoder.blank_id != 0:
        raise ValueError("fast_beam_search_nbest assumes blank_id == 0, as icefall does")
    streams = init_fast_beam_streams(model, encoder_out.size(0), encoder_out.device)
    fast_beam_search_chunk(
        model, encoder_out, encoder_out_lens, streams, beam, max_states, max_contexts, temperature
    )
    generator = torch.Generator().manual_seed(seed)
    results = []
    for stream in streams:
        if not stream.frames:
            results.append(DecodingResult(tokens=[], timestamps=[], score=0.0))
            continue
        paths = _sample_paths(stream, num_paths, nbest_scale, generator)
        # Timestamps of a sequence: those of its best-scoring sampled alignment.
        unique = {}
        for tokens, timestamps, score in paths:
            if tokens not in unique or score > unique[tokens][1]:
                unique[tokens] = (timestamps, score)
        sequences = list(unique)
        scores = _best_alignment_scores(
            stream, sequences, model.decoder.vocab_size, model.decoder.blank_id
        )
        best = int(torch.argmax(scores))
        results.append(
            DecodingResult(
                tokens=list(sequences[best]),
                timestamps=list(unique[sequences[best]][0]),
                score=float(scores[best]),
            )
        )
    return results
