"""Reading audio for inference: resampling and channel notes, clear errors, fbank features."""

import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from icefall_lite.audio import AudioReadError, compute_fbank, read_audio, read_audio_files


def _tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_reads_16k_mono_unchanged(tmp_path):
    x = _tone(0.5, 16000)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    wave = read_audio(tmp_path / "a.wav")
    assert wave.dtype == torch.float32 and wave.shape == (8000,)
    np.testing.assert_allclose(wave.numpy(), x, atol=1e-7)


def test_resamples_with_a_note(tmp_path, caplog):
    sf.write(tmp_path / "b.wav", _tone(1.0, 8000, freq=300.0), 8000)
    with caplog.at_level(logging.WARNING):
        wave = read_audio(tmp_path / "b.wav", sample_rate=16000)
    assert wave.shape == (16000,)
    assert "resampling from 8000 Hz to 16000 Hz" in caplog.text
    # the tone is still at 300 Hz after resampling
    spectrum = np.abs(np.fft.rfft(wave.numpy()))
    assert abs(int(np.argmax(spectrum)) - 300) <= 2


def test_first_channel_with_a_note(tmp_path, caplog):
    left, right = _tone(0.2, 16000, 440.0), _tone(0.2, 16000, 880.0)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING):
        wave = read_audio(tmp_path / "s.wav")
    assert "has 2 channels; using the first one" in caplog.text
    np.testing.assert_allclose(wave.numpy(), left, atol=1e-7)


def test_unreadable_files_are_named_and_others_still_read(tmp_path, caplog):
    sf.write(tmp_path / "ok.wav", _tone(0.1, 16000), 16000)
    (tmp_path / "junk.wav").write_bytes(b"RIFF....not really")
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioReadError, match="junk.wav: cannot read it as audio"):
        read_audio(tmp_path / "junk.wav")
    with pytest.raises(AudioReadError, match="nope.wav: no such file"):
        read_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioReadError, match="empty.wav: the file has no samples"):
        read_audio(tmp_path / "empty.wav")
    names = ["junk.wav", "ok.wav", "nope.wav"]
    with caplog.at_level(logging.ERROR):
        waves = read_audio_files([tmp_path / n for n in names])
    assert waves[0] is None and waves[2] is None and waves[1].shape == (1600,)
    assert "junk.wav" in caplog.text and "nope.wav" in caplog.text


def test_fbank_matches_the_kaldi_settings_sherpa_onnx_uses():
    knf = pytest.importorskip("kaldi_native_fbank")
    wave = torch.from_numpy(_tone(1.0, 16000)) + 0.01 * torch.randn(16000)
    (features,) = compute_fbank([wave], backend="lhotse")
    assert features.shape == (100, 80)
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0
    opts.frame_opts.snip_edges = False
    opts.mel_opts.num_bins = 80
    opts.mel_opts.high_freq = -400
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(16000, wave.tolist())
    fbank.input_finished()
    reference = np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])
    np.testing.assert_allclose(features.numpy(), reference, atol=2e-3)
