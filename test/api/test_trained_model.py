"""With the trained synth model (when this checkout has it; slow): silence is an empty
transcript, and a file of concatenated test-human prompts decoded in overlapping windows equals
its decoding as one window except near nothing: no word lost or doubled at the joins."""

import glob
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from icefall_lite import ASRModel
from icefall_lite.scoring import word_error_rate

ASR = Path(__file__).resolve().parents[2] / "egs" / "synth" / "ASR"
# export.py's pretrained.pt of the trained model; another exp dir through the environment.
CHECKPOINT = (
    Path(os.environ.get("ICEFALL_LITE_SYNTH_EXP", ASR / "zipformer" / "exp")) / "pretrained.pt"
)
TOKENS = ASR / "data" / "lang_bpe_128" / "tokens.txt"
PROMPTS = sorted(glob.glob(str(ASR / "download" / "asterisk" / "test-human-*.wav")))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHECKPOINT.is_file() and TOKENS.is_file() and len(PROMPTS) >= 24),
        reason="needs the trained synth model (zipformer/exp/pretrained.pt) and test-human audio",
    ),
]


@pytest.fixture(scope="module")
def model():
    return ASRModel.from_checkpoint(CHECKPOINT, TOKENS)


def test_silence_is_an_empty_transcript(model):
    quiet = 1e-4 * np.random.default_rng(0).standard_normal(32000).astype(np.float32)
    assert model.transcribe([np.zeros(32000, np.float32), quiet]) == ["", ""]


def test_window_joins_neither_lose_nor_double_words(model, tmp_path):
    path = tmp_path / "prompts.wav"
    sf.write(path, np.concatenate([sf.read(p, dtype="float32")[0] for p in PROMPTS[:24]]), 16000)
    seconds = sf.info(path).duration
    common = dict(long_audio="chunked", long_audio_seconds=1.0, return_hypotheses=True)
    whole = model.transcribe(path, chunk_seconds=seconds + 10, **common)[0]
    joined = model.transcribe(path, chunk_seconds=20.0, overlap_seconds=4.0, **common)[0]
    ref, hyp = whole.text.split(), joined.text.split()
    assert len(ref) > 40
    # Each window starts without left context, so this small model may hear a word differently
    # after a join (with 10 s windows it changes whole phrases); none may go missing or appear
    # twice at the joins (about 70 s: four windows, three joins).
    assert abs(len(hyp) - len(ref)) <= 1, (ref, hyp)
    assert word_error_rate([(ref, hyp)]) < 5.0
