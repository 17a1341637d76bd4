"""models/interface.py: the Zipformer transducer has every member the loop, the searches,
streaming and export use, and the helpers tell the heads apart."""

import argparse

import torch
from mini_zipformer import MINI_ZIPFORMER

from icefall_lite.models import add_model_arguments, build_model
from icefall_lite.models.interface import AsrModelInterface, has_ctc_head, has_transducer
from icefall_lite.utils import AttributeDict


def _model(**overrides):
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    params = AttributeDict(vars(parser.parse_args([])))
    params.update(MINI_ZIPFORMER, vocab_size=10, blank_id=0, feature_dim=80)
    params.update(decoder_dim=16, joiner_dim=16, **overrides)
    return build_model(params)


def test_the_zipformer_transducer_implements_the_interface():
    model = _model(use_ctc=True)
    assert isinstance(model, AsrModelInterface)
    assert has_transducer(model) and has_ctc_head(model)
    x, x_lens = torch.randn(2, 100, 80), torch.tensor([100, 80])
    model.eval()
    encoder_out, encoder_out_lens = model.forward_encoder(x, x_lens)
    assert torch.equal(encoder_out_lens, model.output_frames(x_lens))
    assert encoder_out.shape[:2] == (2, int(encoder_out_lens.max()))
    log_probs = model.ctc_output(encoder_out)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, encoder_out.size(1)))
    assert model.output_frames(100) == int(encoder_out_lens[0])


def test_ctc_only_model_has_no_transducer():
    model = _model(use_ctc=True, use_transducer=False)
    assert isinstance(model, AsrModelInterface)
    assert has_ctc_head(model) and not has_transducer(model)
    assert not has_ctc_head(_model())


def test_streaming_encoder_of_a_causal_model():
    model = _model(causal=True, chunk_size="16", left_context_frames="64").eval()
    encoder = model.streaming_encoder(16, 64)
    assert encoder.decode_chunk_len == 32
    states = encoder.get_init_states(2, torch.device("cpu"))
    assert len(states) == len(encoder.state_batch_dims)
    x = torch.randn(2, encoder.decode_chunk_len + encoder.pad_length, 80)
    with torch.no_grad():
        out, out_lens, new_states = encoder(x, torch.full((2,), x.size(1)), states)
    assert out.shape[:2] == (2, 8) and len(new_states) == len(states)
