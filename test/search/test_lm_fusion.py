"""Shallow fusion of an n-gram LM: on a constructed case where the acoustics narrowly prefer
one hypothesis and the LM strongly prefers another, the LM flips the search's answer."""

import math

import pytest
import torch
from torch import nn

from icefall_lite.lm import load_token_lm, train_kneser_ney, write_arpa
from icefall_lite.models import Decoder, Joiner
from icefall_lite.search import ctc_prefix_beam_search, modified_beam_search
from icefall_lite.search.lm_fusion import LmFusion

PIECES = ["<blk>", "<sos/eos>", "<unk>", "\u2581A", "\u2581B", "C"]
A, B, C = 3, 4, 5


@pytest.fixture
def lm_b(tmp_path):
    """A token LM trained on "▁B C" only: it strongly prefers B over A."""
    entries = train_kneser_ney([["\u2581B", "C"]] * 20 + [["\u2581A", "C"]], order=2)
    return load_token_lm(write_arpa(entries, tmp_path / "b.arpa"), PIECES)


def _ctc_frames():
    """(1, 5, 6) log-probs: blank, A (0.5) vs B (0.4), blank, C, blank."""
    p = torch.full((5, 6), 1e-4)
    p[0, 0] = p[2, 0] = p[4, 0] = 1.0
    p[1, A], p[1, B], p[1, 0] = 0.5, 0.4, 0.1
    p[3, C] = 1.0
    return (p / p.sum(dim=1, keepdim=True)).log().unsqueeze(0)


def test_ctc_prefix_beam_search_follows_the_lm(lm_b):
    log_probs, lens = _ctc_frames(), torch.tensor([5])
    plain = ctc_prefix_beam_search(log_probs, lens, beam=4)[0]
    assert plain.tokens == [A, C]
    fused = ctc_prefix_beam_search(log_probs, lens, beam=4, fusion=LmFusion(lm_b, 0.5))[0]
    assert fused.tokens == [B, C]
    assert fused.timestamps == [1, 3]
    # A tiny LM weight does not overturn the acoustics.
    weak = ctc_prefix_beam_search(log_probs, lens, beam=4, fusion=LmFusion(lm_b, 0.01))[0]
    assert weak.tokens == [A, C]


def test_fused_score_is_acoustic_plus_scaled_lm(lm_b):
    log_probs, lens = _ctc_frames(), torch.tensor([5])
    fused = ctc_prefix_beam_search(log_probs, lens, beam=4, fusion=LmFusion(lm_b, 0.5, 0.25))[0]
    state = lm_b.initial_state()
    lm_total = 0.0
    for token in fused.tokens:
        logp, state = lm_b.score(state, token)
        lm_total += logp
    lm_total += lm_b.final(state)
    # Acoustic: every path collapsing to "B C" (B held on frame 1 only).
    p = _ctc_frames()[0].exp()
    acoustic = math.log(float(p[0, 0] * p[1, B] * p[2, 0] * p[3, C] * p[4, 0]))
    # Paths with C on frames 3-4 or B spilling are ~1e-4 smaller; allow for them.
    assert fused.score == pytest.approx(acoustic + 0.5 * lm_total + 0.25, abs=1e-3)


class _Transducer(nn.Module):
    """A decoder and joiner whose output ignores the decoder: log-softmax of the encoder frame
    (joiner = 10 * tanh(encoder_out), encoder_out built as atanh(logits / 10))."""

    def __init__(self):
        super().__init__()
        vocab = len(PIECES)
        self.decoder = Decoder(vocab, 8, blank_id=0, context_size=2)
        self.joiner = Joiner(vocab, 8, vocab, vocab)
        with torch.no_grad():
            self.joiner.encoder_proj.weight.copy_(torch.eye(vocab))
            self.joiner.encoder_proj.bias.zero_()
            self.joiner.decoder_proj.weight.zero_()
            self.joiner.decoder_proj.bias.zero_()
            self.joiner.output_linear.weight.copy_(10 * torch.eye(vocab))
            self.joiner.output_linear.bias.zero_()


def _encoder_out(logits):
    return torch.atanh(torch.tensor(logits) / 10).unsqueeze(0)


def test_modified_beam_search_follows_the_lm(lm_b):
    model = _Transducer().eval()
    neg = -6.0
    frames = [
        [1.0, neg, neg, 3.0, 2.8, neg],  # A narrowly over B
        [1.0, neg, neg, neg, neg, 3.0],  # C
        [5.0, neg, neg, neg, neg, neg],
    ]
    enc, lens = _encoder_out(frames), torch.tensor([3])
    with torch.no_grad():
        plain = modified_beam_search(model, enc, lens, beam=4)[0]
        fused = modified_beam_search(model, enc, lens, beam=4, fusion=LmFusion(lm_b, 0.6))[0]
    assert plain.tokens == [A, C]
    assert fused.tokens == [B, C]


def test_fusion_keeps_a_recurrent_decoders_state(lm_b):
    # With a zero LM weight the fused modified beam search must find what the plain one finds;
    # for the LSTM transducer that holds only if each hypothesis keeps its prediction network
    # state through the fused step (it is a function of ys, as the LM state is).
    from icefall_lite.models import build_model
    from icefall_lite.utils import AttributeDict

    torch.manual_seed(0)
    params = AttributeDict(
        model_family="lstm_transducer",
        vocab_size=len(PIECES),
        blank_id=0,
        feature_dim=80,
        lstm_preset="cpu",
        encoder_hidden_dim=32,
        pred_net_dim=16,
        joint_dim=24,
        lstm_dropout=0.0,
    )
    model = build_model(params).eval()
    lens = torch.tensor([200, 160, 120])
    with torch.no_grad():
        encoder_out, encoder_out_lens = model.forward_encoder(torch.randn(3, 200, 80), lens)
    plain = modified_beam_search(model, encoder_out, encoder_out_lens, beam=3)
    fused = modified_beam_search(
        model, encoder_out, encoder_out_lens, beam=3, fusion=LmFusion(lm_b, 0.0)
    )
    assert sum(len(r.tokens) for r in plain) > 3  # the untrained joiner emits tokens
    assert [r.tokens for r in fused] == [r.tokens for r in plain]
    # The scores too: a hypothesis restarted from the initial decoder state scores otherwise.
    assert [r.score for r in fused] == pytest.approx([r.score for r in plain], abs=1e-6)
