"""Stand-in transducer pieces following the Decoder/Joiner contract, for search tests.

``RandomTransducer``: small random decoder + joiner (tanh joiner, like the real one).
``transducer_sequence_log_prob``: log P(tokens) of the standard transducer topology (any number
of symbols per frame, each frame left by a blank, as Graves' beam search scores), by the forward
recursion.
``ScriptedTransducer``: a joiner with a known best path: the encoder frame names the token to emit
on that frame (or none), and the decoder state says which token may come next, so only the scripted
sequence at the scripted frames is probable.
"""

import itertools
import math
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn


class TinyDecoder(nn.Module):
    def __init__(self, vocab_size: int, decoder_dim: int, blank_id: int, context_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.blank_id = blank_id
        self.context_size = context_size
        self.embedding = nn.Embedding(vocab_size, decoder_dim)
        self.mix = nn.Linear(decoder_dim * context_size, decoder_dim)

    def forward(self, y: torch.Tensor, need_pad: bool = True) -> torch.Tensor:
        assert not need_pad and y.size(1) == self.context_size
        emb = self.embedding(y.clamp(min=0)) * (y >= 0).unsqueeze(-1)  # (N, c, D)
        return torch.relu(self.mix(emb.flatten(1))).unsqueeze(1)  # (N, 1, D)


class TinyJoiner(nn.Module):
    def __init__(self, encoder_dim: int, decoder_dim: int, joiner_dim: int, vocab_size: int):
        super().__init__()
        self.encoder_proj = nn.Linear(encoder_dim, joiner_dim)
        self.decoder_proj = nn.Linear(decoder_dim, joiner_dim)
        self.output_linear = nn.Linear(joiner_dim, vocab_size)

    def forward(self, enc: torch.Tensor, dec: torch.Tensor, project_input: bool = True):
        if project_input:
            enc, dec = self.encoder_proj(enc), self.decoder_proj(dec)
        return self.output_linear(torch.tanh(enc + dec))


class RandomTransducer(nn.Module):
    def __init__(self, vocab_size=4, encoder_dim=6, context_size=2, sharpness=3.0, blank_bias=0.0):
        super().__init__()
        self.decoder = TinyDecoder(vocab_size, 8, blank_id=0, context_size=context_size)
        self.joiner = TinyJoiner(encoder_dim, 8, 8, vocab_size)
        with torch.no_grad():  # sharper distributions make ties impossible in practice
            self.joiner.output_linear.weight.mul_(sharpness)
            # A likelier blank keeps the mass on short outputs (enumerable ones).
            self.joiner.output_linear.bias[0] += blank_bias


class _OneHotDecoder(nn.Module):
    """Decoder output = one-hot of the last token in the history (blank/-1 -> one-hot blank)."""

    def __init__(self, vocab_size: int, context_size: int):
        super().__init__()
        self.vocab_size, self.blank_id, self.context_size = vocab_size, 0, context_size
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, y: torch.Tensor, need_pad: bool = True) -> torch.Tensor:
        last = y[:, -1].clamp(min=0)
        return nn.functional.one_hot(last, self.vocab_size).float().unsqueeze(1)


class _ScriptedJoiner(nn.Module):
    """logits = 4 * frame_token_onehot + 4 * successor_onehot(last token) + 5 * blank_onehot."""

    def __init__(self, script: Sequence[int], vocab_size: int):
        super().__init__()
        successor = torch.zeros(vocab_size, vocab_size)
        previous = 0
        for token in script:
            successor[previous, token] = 1.0
            previous = token
        self.register_buffer("successor", successor)
        self.encoder_proj = nn.Identity()
        self.decoder_proj = nn.Identity()
        blank = torch.zeros(vocab_size)
        blank[0] = 5.0
        self.register_buffer("blank", blank)

    def forward(self, enc: torch.Tensor, dec: torch.Tensor, project_input: bool = True):
        return 4.0 * enc + 4.0 * (dec @ self.successor) + self.blank


class ScriptedTransducer(nn.Module):
    def __init__(self, script: Sequence[int], vocab_size: int, context_size: int = 2):
        super().__init__()
        assert len(set(script)) == len(script) and 0 not in script
        self.decoder = _OneHotDecoder(vocab_size, context_size)
        self.joiner = _ScriptedJoiner(script, vocab_size)


def scripted_encoder_out(script: Sequence[int], frames: Sequence[int], num_frames: int, vocab: int):
    """(1, T, V) encoder output emitting script[i] on frames[i]."""
    enc = torch.zeros(1, num_frames, vocab)
    for token, t in zip(script, frames):
        enc[0, t, token] = 1.0
    return enc


@torch.no_grad()
def enumerate_one_symbol_alignments(
    model: nn.Module, encoder_out: torch.Tensor
) -> Dict[Tuple[int, ...], List[float]]:
    """Every alignment with one symbol per frame of a (1, T, C) utterance: token sequence ->
    log-probabilities of its alignments. Exponential in T: tiny inputs only."""
    blank, c = model.decoder.blank_id, model.decoder.context_size
    vocab = model.decoder.vocab_size
    enc = model.joiner.encoder_proj(encoder_out[0])
    out: Dict[Tuple[int, ...], List[float]] = {}
    for alignment in itertools.product(range(vocab), repeat=enc.size(0)):
        ys = [-1] * (c - 1) + [blank]
        total = 0.0
        for t, symbol in enumerate(alignment):
            dec = model.decoder(torch.tensor([ys[-c:]]), need_pad=False)[:, 0]
            logits = model.joiner(
                enc[t : t + 1], model.joiner.decoder_proj(dec), project_input=False
            )
            total += float(logits.log_softmax(-1)[0, symbol])
            if symbol != blank:
                ys.append(symbol)
        out.setdefault(tuple(ys[c:]), []).append(total)
    return out


def log_sum(values: Sequence[float]) -> float:
    peak = max(values)
    return peak + math.log(sum(math.exp(v - peak) for v in values))


@torch.no_grad()
def transducer_sequence_log_prob(model: nn.Module, encoder_out: torch.Tensor, tokens) -> float:
    """log P(tokens | (1, T, C) encoder_out), summed over every alignment of the standard
    (Graves) topology: on frame t, from output position u, emit tokens[u] (stay on t) or blank
    (go to t + 1); the last frame is left by a blank. alpha(t, u) by the forward recursion."""
    blank, c = model.decoder.blank_id, model.decoder.context_size
    enc = model.joiner.encoder_proj(encoder_out[0])
    num_frames, num_tokens = enc.size(0), len(tokens)
    history = [-1] * (c - 1) + [blank] + list(tokens)
    log_probs = []  # per output position u: (T, V)
    for u in range(num_tokens + 1):
        dec = model.decoder(torch.tensor([history[u : u + c]]), need_pad=False)[:, 0]
        logits = model.joiner(enc, model.joiner.decoder_proj(dec), project_input=False)
        log_probs.append(logits.log_softmax(-1).tolist())
    alpha = [[-math.inf] * (num_tokens + 1) for _ in range(num_frames + 1)]
    alpha[0][0] = 0.0
    for t in range(num_frames):
        for u in range(num_tokens + 1):
            if u > 0:
                emit = alpha[t][u - 1] + log_probs[u - 1][t][tokens[u - 1]]
                alpha[t][u] = _log_add(alpha[t][u], emit)
            alpha[t + 1][u] = _log_add(alpha[t + 1][u], alpha[t][u] + log_probs[u][t][blank])
    return alpha[num_frames][num_tokens]


def _log_add(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))
