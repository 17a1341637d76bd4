"""transcribe() and transcribe_generator(): every input type, hypotheses with times, order,
search choice per model family, and one clear error per bad input."""

import json
import logging
import wave

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import chirp

from icefall_lite import ASRModel
from icefall_lite.api import Hypothesis
from icefall_lite.audio import AudioReadError


@pytest.fixture(scope="module")
def expected(models, wavs):
    """Per-file results of each model, one file at a time (batch size 1)."""
    return {
        kind: [model.transcribe([str(w)], batch_size=1)[0] for w in wavs]
        for kind, model in models.items()
    }


def test_top_level_import():
    import icefall_lite

    assert icefall_lite.ASRModel is ASRModel


def test_batches_give_the_per_file_results(models, wavs, expected):
    # A causal model's inputs are padded to whole chunks and masked: batching changes nothing.
    texts = models["causal"].transcribe([str(w) for w in wavs], batch_size=3)
    assert texts == expected["causal"]
    assert all(texts) and len(set(texts)) > 1  # the random model says something, varied
    # Full-context Zipformer stacks pool frames across the end of a shorter input (as in
    # decode.py's batches); inputs of one length are not padded, so their batch is exact.
    same = [str(wavs[1]), sf.read(wavs[1], dtype="float32")[0]]
    for kind in ("offline", "ctc"):
        assert models[kind].transcribe(same, batch_size=2) == [expected[kind][1]] * 2, kind


def test_every_input_type(models, wavs, expected, tmp_path):
    model = models["offline"]
    want = expected["offline"]
    arrays = [sf.read(w, dtype="float32")[0] for w in wavs]
    assert model.transcribe(str(wavs[0])) == want[:1]  # a path
    assert model.transcribe(wavs[1]) == want[1:2]  # a pathlib.Path
    assert model.transcribe(arrays[2]) == want[2:3]  # a numpy array
    assert model.transcribe(torch.from_numpy(arrays[3])) == want[3:]  # a tensor
    mixed = [str(wavs[0]), torch.from_numpy(arrays[1]), arrays[2], wavs[3]]
    assert model.transcribe(mixed, batch_size=1) == want
    pcm16 = (arrays[0] * 32767).astype(np.int16)  # integer PCM is scaled to [-1, 1]
    assert model.transcribe(pcm16) == want[:1]
    # Another rate (array with sample_rate=, or a file) and more channels: resampled, first channel.
    from lhotse.augmentation.resample import Resample

    at_8k = Resample(16000, 8000)(torch.from_numpy(arrays[1])[None])[0].numpy()
    again = model.transcribe(at_8k, sample_rate=8000)[0]
    stereo = tmp_path / "stereo8k.wav"
    sf.write(stereo, np.stack([at_8k, 0.1 * at_8k], axis=1), 8000)
    assert model.transcribe(stereo)[0] == again and again  # file and array agree


def test_wav_scp_and_nemo_manifest(models, wavs, expected, tmp_path):
    model = models["causal"]
    scp = tmp_path / "wav.scp"
    scp.write_text("".join(f"utt{i} {w}\n" for i, w in enumerate(wavs)))
    assert model.transcribe(scp) == expected["causal"]
    manifest = tmp_path / "in.json"
    lines = [{"audio_filepath": w.name, "duration": sf.info(w).duration} for w in wavs]
    lines.insert(1, {"audio_filepath": "missing.wav", "duration": 1.0})  # logged and skipped
    (tmp_path / "in.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    for w in wavs:
        (tmp_path / w.name).write_bytes(w.read_bytes())
    assert model.transcribe(manifest) == expected["causal"]
    out = model.transcribe_manifest(manifest)
    assert out == tmp_path / "in_pred.json"
    written = [json.loads(x) for x in out.read_text().splitlines()]
    assert [w["pred_text"] for w in written] == expected["causal"]
    assert [w["audio_filepath"] for w in written] == [str(tmp_path / w.name) for w in wavs]
    assert "text" not in written[0]  # no reference given, none invented


def test_manifest_offsets_select_segments(models, wavs, tmp_path):
    model = models["offline"]
    whole = np.concatenate([sf.read(w, dtype="float32")[0] for w in wavs[:2]])
    sf.write(tmp_path / "two.wav", whole, 16000)
    first = sf.info(wavs[0]).frames / 16000
    manifest = tmp_path / "seg.json"
    manifest.write_text(
        json.dumps({"audio_filepath": "two.wav", "offset": first,
                    "duration": sf.info(wavs[1]).duration, "text": "X"}) + "\n"
    )  # fmt: skip
    assert model.transcribe(manifest) == model.transcribe(wavs[1])


def test_manifest_with_offsets_writes_pred_text_lines(models, wavs, tmp_path, caplog):
    model = models["offline"]
    whole = np.concatenate([sf.read(w, dtype="float32")[0] for w in wavs[:2]])
    sf.write(tmp_path / "two.wav", whole, 16000)
    first, second = (sf.info(w).frames / 16000 for w in wavs[:2])
    lines = [
        {"audio_filepath": "two.wav", "duration": second, "offset": first, "speaker": "b"},
        {"audio_filepath": "two.wav", "duration": 9.0, "offset": 1.0, "text": "PAST THE END"},
        {"audio_filepath": "two.wav", "duration": first, "text": "REF", "lang": "en"},
    ]
    manifest = tmp_path / "segments.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    expected = [model.transcribe(wavs[1])[0], model.transcribe(wavs[0])[0]]
    assert expected[0] != expected[1]  # the segments are told apart
    # batch_size=1: each segment decoded alone, as the files are (padding alters the edges).
    with caplog.at_level(logging.WARNING):
        assert model.transcribe(manifest, batch_size=1) == expected
    assert f"{manifest}:2: segment past end" in caplog.text
    out = model.transcribe_manifest(manifest, tmp_path / "out" / "pred.json", batch_size=1)
    written = [json.loads(x) for x in out.read_text().splitlines()]
    # The usable input lines, in order, audio paths resolved, every key kept, and pred_text.
    assert written == [
        dict(line, audio_filepath=str(tmp_path / "two.wav"), pred_text=text)
        for line, text in zip([lines[0], lines[2]], expected)
    ]


def test_generator_yields_in_order_lazily(models, wavs, expected):
    model = models["offline"]
    inputs = [str(w) for w in wavs] * 2
    gen = model.transcribe_generator(iter(inputs), batch_size=1)
    assert next(gen) == expected["offline"][0]  # before the list is read to its end
    assert [next(gen) for _ in range(len(inputs) - 1)] == (expected["offline"] * 2)[1:]
    with pytest.raises(StopIteration):
        next(gen)


def test_hypotheses_have_tokens_times_and_words(models, wavs):
    model = models["causal"]
    text = model.transcribe(wavs[1])[0]
    (hyp,) = model.transcribe(wavs[1], return_hypotheses=True)
    assert isinstance(hyp, Hypothesis) and hyp.text == text
    assert model.transcribe(wavs[1], timestamps=True)[0] == hyp
    assert len(hyp.tokens) == len(hyp.token_ids) == len(hyp.timestamps) > 0
    assert [model.symbols[i] for i in hyp.token_ids] == hyp.tokens
    assert hyp.timestamps == sorted(hyp.timestamps) and hyp.timestamps[-1] < 1.9
    assert model.frame_shift == pytest.approx(0.04)  # Conv2dSubsampling: 4 fbank frames
    on_grid = [t for t in hyp.timestamps if t < 1.8]  # later ones are clipped to the end
    assert all(t == pytest.approx(round(t / 0.04) * 0.04) for t in on_grid) and on_grid
    assert " ".join(w.word for w in hyp.words) == hyp.text
    for w in hyp.words:
        assert w.start in hyp.timestamps and w.start < w.end
    assert hyp.score < 0
    assert json.loads(json.dumps(hyp.to_dict()))["words"][0]["word"] == hyp.words[0].word


def test_each_family_gets_its_searches(models, wavs):
    ctc, offline = models["ctc"], models["offline"]
    assert ctc.default_decoding_method() == "ctc_greedy_search"
    with pytest.raises(ValueError, match="CTC-only; use ctc_greedy_search"):
        ctc.transcribe(wavs[0], decoding_method="greedy_search")
    assert ctc.transcribe(wavs[0]) == ctc.transcribe(wavs[0], decoding_method="ctc_greedy_search")
    for method in ("modified_beam_search", "ctc_greedy_search"):
        texts = offline.transcribe(wavs[0], decoding_method=method, beam_size=2)
        assert texts[0], method
    with pytest.raises(ValueError, match="beam_size must be >= 1"):
        offline.transcribe(wavs[0], decoding_method="modified_beam_search", beam_size=0)
    with pytest.raises(TypeError, match="unknown option"):
        offline.transcribe(wavs[0], beamsize=3)


def _truncated_wav(path, src):
    data = src.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_bad_inputs_name_the_file(models, wavs, tmp_path, caplog):
    model = models["offline"]
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 10)
    zero = tmp_path / "zero.wav"
    with wave.open(str(zero), "wb") as w:  # a header and no samples
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
    for path, reason in (
        (tmp_path / "missing.wav", "no such file"),
        (empty, "the file is empty"),
        (junk, "cannot read it as audio"),
        (zero, "the file has no samples"),
    ):
        with pytest.raises(AudioReadError, match=f"{path.name}: {reason}"):
            model.transcribe([str(wavs[0]), str(path)])
    with pytest.raises(AudioReadError, match=r"audio\[1\]: empty waveform"):
        model.transcribe([np.zeros(100, np.float32), np.zeros(0, np.float32)])
    with pytest.raises(ValueError, match=r"audio: expected a 1-D \(mono\) waveform"):
        model.transcribe(np.zeros((2, 1600), np.float32))
    with pytest.raises(ValueError, match="cannot transcribe a dict"):
        model.transcribe({"a": 1})
    # errors="skip": None in the failing place, the others transcribed, the file named
    caplog.set_level(logging.ERROR)
    out = model.transcribe([str(wavs[0]), str(junk), str(wavs[1])], errors="skip")
    assert out[1] is None and out[0] and out[2] and "junk.wav" in caplog.text
    # A truncated WAV decodes what is there, with a warning naming it.
    cut = _truncated_wav(tmp_path / "cut.wav", wavs[1])
    caplog.set_level(logging.WARNING)
    assert model.transcribe(cut)[0]
    assert "cut.wav: truncated WAV file" in caplog.text


def test_too_short_input_is_an_empty_transcript(models):
    for kind in ("offline", "causal"):
        assert models[kind].transcribe(np.zeros(160, np.float32)) == [""]


def test_chirp_helper_is_deterministic():
    assert np.array_equal(chirp(0.5, 1), chirp(0.5, 1))
