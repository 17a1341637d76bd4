"""egs/synth/ASR/local/synthesize.py: an utterance an engine cannot say is left out and counted."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

LOCAL = Path(__file__).resolve().parents[2] / "egs" / "synth" / "ASR" / "local"
sys.path.insert(0, str(LOCAL))

import synthesize  # noqa: E402


def _row(utt_id: str, engine: str = "espeak-ng") -> list:
    return [utt_id, "spk", engine, "en-us", "1.0", "1.0", "hello", "HELLO", ""]


def _fake_engine(voice, text, rate, pitch, out_wav, effects=""):
    """Writes speech-like noise, silence, or fails, depending on the utterance id."""
    name = Path(out_wav).stem
    if name.startswith("fail"):
        raise subprocess.CalledProcessError(1, ["espeak-ng"], stderr=b"cannot say that\n")
    samples = np.zeros(8000, dtype=np.int16)
    if not name.startswith("silent"):
        samples = (np.random.default_rng(0).standard_normal(8000) * 3000).astype(np.int16)
    soundfile.write(str(out_wav), samples, 16000, subtype="PCM_16")


def test_failed_and_silent_utterances_are_left_out(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(synthesize, "synthesize_espeak", _fake_engine)
    monkeypatch.setattr(synthesize, "missing_tools", lambda: [])
    text_dir, audio_dir, manifest_dir = tmp_path / "text", tmp_path / "audio", tmp_path / "man"
    text_dir.mkdir()
    rows = [_row("good-1"), _row("fail-1"), _row("good-2"), _row("silent-1")]
    with open(text_dir / "train.tsv", "w") as f:
        f.writelines("\t".join(row) + "\n" for row in rows)
    argv = ["synthesize.py", "--split", "train", "--nj", "1", "--text-dir", str(text_dir)]
    argv += ["--audio-dir", str(audio_dir), "--manifest-dir", str(manifest_dir)]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(synthesize, "Pool", _InlinePool)
    synthesize.main()

    with gzip.open(manifest_dir / "synth_supervisions_train.jsonl.gz", "rt") as f:
        kept = [json.loads(line)["id"] for line in f]
    assert kept == ["good-1", "good-2"]
    assert not (audio_dir / "train" / "silent-1.wav").exists()  # retried on a re-run
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "2 of 4 utterances could not be synthesised" in message
    assert "fail-1: espeak-ng failed" in message and "silent-1: silent" in message


def test_no_usable_utterance_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(synthesize, "synthesize_espeak", _fake_engine)
    monkeypatch.setattr(synthesize, "missing_tools", lambda: [])
    monkeypatch.setattr(synthesize, "Pool", _InlinePool)
    (tmp_path / "train.tsv").write_text("\t".join(_row("fail-1")) + "\n")
    argv = ["synthesize.py", "--split", "train", "--text-dir", str(tmp_path)]
    argv += ["--audio-dir", str(tmp_path / "a"), "--manifest-dir", str(tmp_path / "m")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match="no utterance could be synthesised"):
        synthesize.main()


def test_a_row_with_the_wrong_column_count_names_the_line(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("\t".join(_row("a")) + "\n" + "only\tthree\tcolumns\n")
    with pytest.raises(SystemExit, match="line 2: expected 9"):
        synthesize.read_rows(path)


class _InlinePool:
    """multiprocessing.Pool stand-in that runs in this process (so monkeypatches apply)."""

    def __init__(self, processes=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap(self, function, items):
        return map(function, items)
