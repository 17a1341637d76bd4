"""sherpa-onnx (the pip package) loads our ONNX exports, offline and streaming, and decodes a set
of wav files to the same transcripts as our own PyTorch and onnxruntime decoding."""

import numpy as np
import pytest
import soundfile as sf
import torch
from test_export import CHUNK, LEFT, tiny_model, tiny_params

from icefall_lite.audio import compute_fbank, read_audio
from icefall_lite.export.metadata import (
    decoder_meta_data,
    joiner_meta_data,
    offline_encoder_meta_data,
    streaming_encoder_meta_data,
)
from icefall_lite.export.onnx import (
    export_decoder_onnx,
    export_encoder_onnx,
    export_joiner_onnx,
    export_streaming_encoder_onnx,
)
from icefall_lite.export.onnx_model import OnnxStreamingEncoder, OnnxTransducer
from icefall_lite.models.zipformer import resolve_zipformer_params
from icefall_lite.models.zipformer.streaming import ZipformerStreamingEncoder
from icefall_lite.search import greedy_search
from icefall_lite.streaming import StreamingSearch, streaming_decode

sherpa_onnx = pytest.importorskip("sherpa_onnx")
pytestmark = pytest.mark.slow

VOCAB = 20


def sharpened(causal: bool):
    """A random tiny model whose tokens depend clearly on the audio: a large encoder projection
    and a blank bias give transcripts that vary between files and contain blanks."""
    model = tiny_model(causal)
    with torch.no_grad():
        model.joiner.encoder_proj.weight.mul_(30.0)
        model.joiner.output_linear.bias.zero_()
        model.joiner.output_linear.bias[0] = 5.0
    return model


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    d = tmp_path_factory.mktemp("sherpa")
    tokens = d / "tokens.txt"
    symbols = ["<blk>", "<sos/eos>", "<unk>"] + [f"▁t{i}" for i in range(3, VOCAB)]
    tokens.write_text("".join(f"{s} {i}\n" for i, s in enumerate(symbols)), encoding="utf-8")
    rng = np.random.default_rng(0)
    wavs = []
    for i, seconds in enumerate([1.3, 2.1, 0.9]):
        t = np.arange(int(16000 * seconds)) / 16000
        f0 = 200 + 150 * np.sin(2 * np.pi * (0.7 + 0.3 * i) * t)
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)
        x = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / 16000) * envelope
        x += 0.01 * rng.standard_normal(t.size)
        sf.write(d / f"w{i}.wav", x.astype(np.float32), 16000)
        wavs.append(str(d / f"w{i}.wav"))
    return d, str(tokens), symbols, wavs


def _export_decoder_joiner(model, d):
    export_decoder_onnx(model.decoder, model.joiner.decoder_proj, d / "decoder.onnx",
                        decoder_meta_data(model.decoder.context_size, VOCAB))  # fmt: skip
    export_joiner_onnx(model.joiner, d / "joiner.onnx", joiner_meta_data(32))


def _words(ids, symbols):
    return "".join(symbols[i] for i in ids).replace("▁", " ").split()


def test_sherpa_onnx_offline_matches_our_decode(assets):
    d, tokens, symbols, wavs = assets
    d = d / "offline"
    d.mkdir()
    model = sharpened(causal=False)
    export_encoder_onnx(model, d / "encoder.onnx", offline_encoder_meta_data())
    _export_decoder_joiner(model, d)
    recognizer = sherpa_onnx.OfflineRecognizer.from_transducer(
        str(d / "encoder.onnx"), str(d / "decoder.onnx"), str(d / "joiner.onnx"), tokens
    )
    onnx_model = OnnxTransducer(d / "decoder.onnx", d / "joiner.onnx", d / "encoder.onnx")
    transcripts = set()
    for wav in wavs:
        wave = read_audio(wav)
        stream = recognizer.create_stream()
        stream.accept_waveform(16000, wave.numpy())
        recognizer.decode_stream(stream)
        theirs = stream.result.text.split()

        features = compute_fbank([wave])[0].unsqueeze(0)
        lens = torch.tensor([features.size(1)])
        with torch.no_grad():
            encoder_out, encoder_out_lens = model.forward_encoder(features, lens)
        ours_torch = greedy_search(model, encoder_out, encoder_out_lens)[0].tokens
        encoder_out, encoder_out_lens = onnx_model.run_encoder(features, lens)
        ours_onnx = greedy_search(onnx_model, encoder_out, encoder_out_lens)[0].tokens
        assert _words(ours_torch, symbols) == theirs
        assert _words(ours_onnx, symbols) == theirs
        transcripts.add(" ".join(theirs))
    assert len(transcripts) > 1 and all(transcripts)


def test_sherpa_onnx_online_matches_our_streaming_decode(assets):
    d, tokens, symbols, wavs = assets
    d = d / "online"
    d.mkdir()
    model = sharpened(causal=True)
    encoder = ZipformerStreamingEncoder(model.encoder_embed, model.encoder, CHUNK, LEFT)
    meta = streaming_encoder_meta_data(resolve_zipformer_params(tiny_params(True)), CHUNK, LEFT)
    export_streaming_encoder_onnx(encoder, model.joiner.encoder_proj, d / "encoder.onnx", meta)
    _export_decoder_joiner(model, d)
    recognizer = sherpa_onnx.OnlineRecognizer.from_transducer(
        tokens, str(d / "encoder.onnx"), str(d / "decoder.onnx"), str(d / "joiner.onnx"),
        num_threads=1,
    )  # fmt: skip
    onnx_model = OnnxTransducer(d / "decoder.onnx", d / "joiner.onnx")
    onnx_encoder = OnnxStreamingEncoder(d / "encoder.onnx")
    transcripts = set()
    for wav in wavs:
        # sherpa-onnx decodes whole chunks only: the usual 0.66 s of trailing silence flushes
        # the end. Our loop gets the same samples and sherpa-onnx's chunking rule.
        wave = torch.cat([read_audio(wav), torch.zeros(int(0.66 * 16000))])
        stream = recognizer.create_stream()
        stream.accept_waveform(16000, wave.numpy())
        stream.input_finished()
        while recognizer.is_ready(stream):
            recognizer.decode_stream(stream)
        theirs = recognizer.get_result(stream).split()

        utterance = [("u", compute_fbank([wave])[0])]
        sherpa_rule = dict(tail_padding_frames=0, flush_partial_chunk=False)
        for search_model, chunk_encoder in ((model, encoder), (onnx_model, onnx_encoder)):
            results, _ = streaming_decode(
                chunk_encoder, StreamingSearch(search_model, "greedy_search"), utterance,
                **sherpa_rule,
            )  # fmt: skip
            assert _words(results["u"].tokens, symbols) == theirs
        transcripts.add(" ".join(theirs))
    assert len(transcripts) > 1 and all(transcripts)


def test_sherpa_onnx_zipformer_ctc_loader_matches_our_conv_ctc_export(assets):
    """The conv_ctc recipe's ONNX export (icefall_lite.export.ctc: x, x_lens -> log_probs,
    log_probs_len) is what sherpa-onnx's icefall CTC loader (from_zipformer_ctc) expects: its
    fbank + greedy CTC give our transcripts of the same files. Our fbank is kaldifeat's here
    (the default when installed): lhotse's own Fbank differs from it by ~1e-3, which this
    sharpened model turns into a different token now and then."""
    from icefall_lite.data.features import kaldifeat_available
    from icefall_lite.export.ctc import OnnxCtcModel, export_ctc_onnx
    from icefall_lite.models import build_model
    from icefall_lite.search import ctc_greedy_search
    from icefall_lite.utils import AttributeDict

    if not kaldifeat_available():
        pytest.skip("kaldifeat is not installed (tools/setup.sh builds it)")
    d, tokens, symbols, wavs = assets
    d = d / "ctc"
    d.mkdir()
    torch.manual_seed(0)
    params = AttributeDict(
        model_family="conv_ctc", conv_preset="cpu", vocab_size=VOCAB, blank_id=0, feature_dim=80
    )
    model = build_model(params).eval()
    with torch.no_grad():  # sharpened: tokens change with the audio (random weights emit one)
        model.ctc_output[1].weight.mul_(50.0)
        model.ctc_output[1].bias.zero_()
    meta = {"model_type": "conv_ctc", "vocab_size": str(VOCAB), "blank_id": "0",
            "subsampling_factor": str(model.subsampling_factor), "feature_dim": "80"}  # fmt: skip
    export_ctc_onnx(model, d / "ctc.onnx", meta)
    recognizer = sherpa_onnx.OfflineRecognizer.from_zipformer_ctc(
        model=str(d / "ctc.onnx"), tokens=tokens, num_threads=1
    )
    onnx_model = OnnxCtcModel(d / "ctc.onnx")
    transcripts = set()
    for wav in wavs:
        wave = read_audio(wav)
        stream = recognizer.create_stream()
        stream.accept_waveform(16000, wave.numpy())
        recognizer.decode_stream(stream)
        theirs = stream.result.text.split()
        features = compute_fbank([wave], backend="kaldifeat")[0].unsqueeze(0)
        lens = torch.tensor([features.size(1)])
        ours = ctc_greedy_search(*onnx_model(features, lens))[0].tokens
        assert _words(ours, symbols) == theirs
        transcripts.add(" ".join(theirs))
    assert len(transcripts) > 1 and all(transcripts)
