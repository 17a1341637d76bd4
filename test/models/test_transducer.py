"""Decoder, Joiner and AsrModel (pruned RNN-T + CTC) on tiny shapes with a stand-in encoder."""

import argparse

import pytest
import torch
import torch.nn as nn

from icefall_lite import rnnt
from icefall_lite.models import (
    AsrModel,
    Decoder,
    Joiner,
    add_model_arguments,
    build_model,
    check_model_arguments,
    transducer_loss_scales,
)
from icefall_lite.utils import AttributeDict

FEATURE_DIM = 80
VOCAB_SIZE = 12
BLANK_ID = 0


class _FrontEnd(nn.Module):
    """(N, T, 80) -> (N, ((T - 7) // 2 + 1) // 2, C): the Conv2dSubsampling length rule."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(FEATURE_DIM, dim)

    def forward(self, x, x_lens):
        out_lens = ((x_lens - 7) // 2 + 1) // 2
        t_out = ((x.size(1) - 7) // 2 + 1) // 2
        x = x[:, : 4 * t_out : 4][:, :t_out]
        return self.proj(x), out_lens


class _LstmEncoder(nn.Module):
    """Time-major 1-layer LSTM with the Zipformer2 call signature."""

    def __init__(self, dim: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim)

    def forward(self, x, x_lens, src_key_padding_mask):
        packed = nn.utils.rnn.pack_padded_sequence(x, x_lens.cpu(), enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, total_length=x.size(0))
        return out, x_lens


def _make_model(use_transducer=True, use_ctc=False, dim=16, context_size=2) -> AsrModel:
    decoder = Decoder(VOCAB_SIZE, decoder_dim=dim, blank_id=BLANK_ID, context_size=context_size)
    joiner = Joiner(encoder_dim=dim, decoder_dim=dim, joiner_dim=dim, vocab_size=VOCAB_SIZE)
    return AsrModel(
        encoder_embed=_FrontEnd(dim),
        encoder=_LstmEncoder(dim),
        decoder=decoder,
        joiner=joiner,
        encoder_dim=dim,
        decoder_dim=dim,
        vocab_size=VOCAB_SIZE,
        use_transducer=use_transducer,
        use_ctc=use_ctc,
    )


def _batch():
    x_lens = torch.tensor([60, 45, 31])
    x = torch.randn(3, 60, FEATURE_DIM)
    y = [[3, 4, 5, 6], [7, 1, 2], [9]]
    return x, x_lens, y


# ---------------------------------------------------------------- Decoder


def test_decoder_shapes_and_context_window():
    decoder = Decoder(VOCAB_SIZE, decoder_dim=8, blank_id=BLANK_ID, context_size=2)
    y = torch.tensor([[0, 3, 4, 5], [0, 6, 6, 0]])
    out = decoder(y)
    assert out.shape == (2, 4, 8)
    # With need_pad=False the output for the last context window equals the padded output at
    # that position: one frame per input token, depending only on the last 2 tokens.
    single = decoder(y[:, 2:4], need_pad=False)
    assert single.shape == (2, 1, 8)
    torch.testing.assert_close(single[:, 0], out[:, 3])
    # A different token 3 steps back must not change the output.
    y_changed = y.clone()
    y_changed[:, 1] = 7
    torch.testing.assert_close(decoder(y_changed)[:, 3], out[:, 3])


def test_decoder_empty_history_conventions_agree():
    decoder = Decoder(VOCAB_SIZE, decoder_dim=8, blank_id=BLANK_ID, context_size=3)
    with torch.no_grad():
        decoder.embedding.weight.normal_()  # the blank row too: masking must still zero it
    all_blank = decoder(torch.tensor([[BLANK_ID, BLANK_ID, 5]]), need_pad=False)
    minus_one = decoder(torch.tensor([[-1, -1, 5]]), need_pad=False)
    padded = decoder(torch.tensor([[5]]), need_pad=True)
    torch.testing.assert_close(all_blank, minus_one)
    torch.testing.assert_close(all_blank[:, 0], padded[:, 0])


def test_decoder_rejects_bad_arguments():
    with pytest.raises(ValueError, match="context_size"):
        Decoder(VOCAB_SIZE, 8, BLANK_ID, context_size=0)
    with pytest.raises(ValueError, match="blank_id"):
        Decoder(VOCAB_SIZE, 8, blank_id=VOCAB_SIZE, context_size=2)
    decoder = Decoder(VOCAB_SIZE, 8, BLANK_ID, context_size=2)
    with pytest.raises(ValueError, match="need_pad=False"):
        decoder(torch.tensor([[1, 2, 3]]), need_pad=False)


# ---------------------------------------------------------------- Joiner


def test_joiner_broadcasts_and_projects():
    joiner = Joiner(encoder_dim=6, decoder_dim=5, joiner_dim=7, vocab_size=VOCAB_SIZE)
    enc = torch.randn(2, 4, 1, 6)
    dec = torch.randn(2, 1, 3, 5)
    logits = joiner(enc, dec)
    assert logits.shape == (2, 4, 3, VOCAB_SIZE)
    expected = joiner.output_linear(torch.tanh(joiner.encoder_proj(enc) + joiner.decoder_proj(dec)))
    torch.testing.assert_close(logits, expected)
    pre = joiner(joiner.encoder_proj(enc), joiner.decoder_proj(dec), project_input=False)
    torch.testing.assert_close(pre, logits)


# ---------------------------------------------------------------- AsrModel


def test_forward_backward_all_heads():
    model = _make_model(use_transducer=True, use_ctc=True)
    x, x_lens, y = _batch()
    simple_loss, pruned_loss, ctc_loss = model(x, x_lens, y, prune_range=3, lm_scale=0.25)
    for loss in (simple_loss, pruned_loss, ctc_loss):
        assert loss.ndim == 0 and torch.isfinite(loss) and loss.item() > 0
    (simple_loss + pruned_loss + ctc_loss).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    # The blank row of the embedding is fixed at zero by design; everything else must learn.
    assert missing == [], missing


def test_pruned_loss_equals_full_loss_when_range_covers_all_symbols():
    """With prune_range >= U + 1 nothing is pruned, so the pruned loss is the full RNN-T loss."""
    model = _make_model()
    x, x_lens, y = _batch()
    _, pruned_loss, _ = model(x, x_lens, y, prune_range=5)

    encoder_out, encoder_out_lens = model.forward_encoder(x, x_lens)
    y_lens = torch.tensor([len(s) for s in y])
    y_padded = torch.zeros(3, 4, dtype=torch.int64)
    for i, s in enumerate(y):
        y_padded[i, : len(s)] = torch.tensor(s)
    decoder_out = model.decoder(torch.cat([torch.zeros(3, 1, dtype=torch.int64), y_padded], 1))
    logits = model.joiner(encoder_out.unsqueeze(2), decoder_out.unsqueeze(1))
    boundary = torch.zeros(3, 4, dtype=torch.int64)
    boundary[:, 2] = y_lens
    boundary[:, 3] = encoder_out_lens
    full = rnnt.rnnt_loss(
        logits=logits, symbols=y_padded, termination_symbol=0, boundary=boundary, reduction="sum"
    )
    torch.testing.assert_close(pruned_loss, full, rtol=1e-4, atol=1e-4)


def test_batched_losses_equal_sum_of_single_utterance_losses():
    """Padding must not leak into any loss: a batch sums its utterances' losses."""
    model = _make_model(use_ctc=True)
    model.eval()  # no dropout in the CTC head
    x, x_lens, y = _batch()
    batched = model(x, x_lens, y, prune_range=3)
    singles = [
        model(x[i : i + 1, : x_lens[i]], x_lens[i : i + 1], [y[i]], prune_range=3) for i in range(3)
    ]
    for k in range(3):
        torch.testing.assert_close(
            batched[k], sum(single[k] for single in singles), rtol=1e-4, atol=1e-3
        )


def test_ctc_only_model():
    model = _make_model(use_transducer=False, use_ctc=True)
    assert model.decoder is None and model.joiner is None
    x, x_lens, y = _batch()
    simple_loss, pruned_loss, ctc_loss = model(x, x_lens, y)
    assert simple_loss.item() == 0 and pruned_loss.item() == 0 and ctc_loss.item() > 0


def test_training_steps_lower_the_loss():
    model = _make_model(use_ctc=True)
    x, x_lens, y = _batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def total_loss():
        simple, pruned, ctc = model(x, x_lens, y, prune_range=3, lm_scale=0.25)
        return 0.5 * simple + pruned + 0.2 * ctc

    initial = total_loss().item()
    for _ in range(30):
        optimizer.zero_grad()
        total_loss().backward()
        optimizer.step()
    assert total_loss().item() < 0.7 * initial


def test_model_rejects_bad_inputs():
    with pytest.raises(ValueError, match="use_transducer"):
        _make_model(use_transducer=False, use_ctc=False)
    model = _make_model()
    x, x_lens, y = _batch()
    with pytest.raises(ValueError, match="batch sizes"):
        model(x, x_lens, y[:2])


# ---------------------------------------------------------------- loss scales and flags


def test_loss_scale_warm_up():
    assert transducer_loss_scales(0, 2000, 0.5) == (1.0, 0.1)
    simple, pruned = transducer_loss_scales(1000, 2000, 0.5)
    assert simple == pytest.approx(0.75) and pruned == pytest.approx(0.55)
    assert transducer_loss_scales(5000, 2000, 0.5) == (0.5, 1.0)


def _parse(*argv):
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    return AttributeDict(vars(parser.parse_args(list(argv))))


def test_model_arguments_defaults_are_icefall_s():
    params = _parse()
    assert (params.decoder_dim, params.joiner_dim, params.context_size) == (512, 512, 2)
    assert params.use_transducer and not params.use_ctc
    check_model_arguments(params)


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--decoder-dim", "-4"], "--decoder-dim"),
        (["--decoder-dim", "30"], "--decoder-dim"),
        (["--prune-range", "1"], "--prune-range"),
        (["--use-transducer", "0"], "--use-transducer"),
        (["--ctc-loss-scale", "-1"], "--ctc-loss-scale"),
    ],
)
def test_bad_model_flags_name_the_flag(argv, flag):
    with pytest.raises(ValueError, match=flag):
        check_model_arguments(_parse(*argv))


def test_build_model_with_the_tiny_zipformer():
    params = _parse("--model-size", "tiny", "--decoder-dim", "32", "--joiner-dim", "32")
    params.update(vocab_size=VOCAB_SIZE, blank_id=BLANK_ID, use_ctc=True)
    model = build_model(params)
    assert model.decoder.context_size == 2 and model.decoder.blank_id == BLANK_ID
    x = torch.randn(2, 150, FEATURE_DIM)
    x_lens = torch.tensor([150, 120])
    encoder_out, encoder_out_lens = model.forward_encoder(x, x_lens)
    expected_lens = ((x_lens - 7) // 2 + 1) // 2
    assert torch.equal(encoder_out_lens, expected_lens)
    assert encoder_out.shape == (2, int(expected_lens.max()), model.joiner.encoder_proj.in_features)
    losses = model(x, x_lens, [[1, 2, 3], [4, 5]], prune_range=3)
    assert all(torch.isfinite(loss) and loss.item() > 0 for loss in losses)
    sum(losses).backward()
    assert model.joiner.output_linear.weight.grad is not None
