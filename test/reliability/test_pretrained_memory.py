"""pretrained.py's peak memory does not grow with the file's length (issue #18).

A 3-minute file goes through the API's long-audio path (the recipe's default model, causal,
streams it chunk by chunk); its peak RSS must stay within 1.3x + 100 MiB of a 25 s file's,
which is decoded whole. Decoding the 3 minutes whole needs several times more. The model is
what ``zipformer/train.py``'s defaults build, with random weights (memory does not depend on
them), and the audio espeak-ng speech: ``tools/bench/pretrained_rss.py`` makes both, and
measures 1-, 10- and 30-minute files (RESULTS.md, "Reliability").
"""

import importlib.util
import shutil

import pytest
from conftest import REPO

_spec = importlib.util.spec_from_file_location(
    "pretrained_rss", REPO / "tools" / "bench" / "pretrained_rss.py"
)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_pretrained_memory_does_not_grow_with_the_file_length(tmp_path):
    lang = bench.bpe_128(tmp_path)
    bench.default_model(tmp_path / "exp", lang)
    checkpoint = bench.export_pretrained(tmp_path / "exp", lang)
    speech = tmp_path / "speech.wav"
    bench.espeak_speech(speech, tmp_path)
    short = bench.repeat_to(speech, tmp_path / "short.wav", 25.0)
    long = bench.repeat_to(speech, tmp_path / "long.wav", 180.0)
    rss_short, _, _ = bench.pretrained_rss(checkpoint, lang / "tokens.txt", short)
    rss_long, _, _ = bench.pretrained_rss(checkpoint, lang / "tokens.txt", long)
    print(f"[rss] pretrained.py peak RSS: 25 s {rss_short:.0f} MiB, 180 s {rss_long:.0f} MiB")
    assert rss_long < 1.3 * rss_short + 100, (rss_short, rss_long)
