"""make_text.py --train-slower-fraction: only train's rates change, and only by 0.65-0.9x."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "synth" / "ASR"


def _make_text(tmp_path: Path, name: str, *flags: str) -> dict:
    out = tmp_path / name
    human = tmp_path / "human.txt"
    human.write_text("PLEASE ENTER YOUR PASSWORD\n")
    command = [sys.executable, str(RECIPE / "local" / "make_text.py"), "--num-train", "200"]
    command += ["--num-dev", "20", "--num-test-synth", "20", "--num-train-kokoro", "10"]
    command += ["--num-train-piper", "20", "--human-transcripts", str(human), "--out-dir", str(out)]
    result = subprocess.run(command + list(flags), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = {}
    for split in ("train", "dev", "test-synth"):
        with open(out / f"{split}.tsv", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
            rows[split] = list(reader)
    return rows


def test_slower_fraction_changes_only_train_rates(tmp_path):
    plain = _make_text(tmp_path, "plain")
    slow = _make_text(tmp_path, "slow", "--train-slower-fraction", "0.6")
    assert slow["dev"] == plain["dev"] and slow["test-synth"] == plain["test-synth"]
    ratios = []
    kokoro_rates = {}
    for a, b in zip(plain["train"], slow["train"], strict=True):
        assert a[:4] + a[5:] == b[:4] + b[5:]  # text, voice, effects unchanged
        ratio = float(b[4]) / float(a[4])
        assert ratio == pytest.approx(1.0, abs=2e-3) or 0.65 - 2e-3 <= ratio <= 0.9 + 2e-3
        ratios.append(ratio)
        if b[2] == "kokoro":  # copies of one sentence share one rate (synthesised once)
            kokoro_rates.setdefault(b[0].rsplit("-", 1)[0], set()).add(b[4])
    slowed = sum(r < 0.95 for r in ratios) / len(ratios)
    assert 0.45 < slowed < 0.75, slowed
    assert kokoro_rates and all(len(rates) == 1 for rates in kokoro_rates.values())


def test_slower_fraction_outside_0_1_is_one_line(tmp_path):
    human = tmp_path / "human.txt"
    human.write_text("HELLO\n")
    command = [sys.executable, str(RECIPE / "local" / "make_text.py"), "--human-transcripts"]
    command += [str(human), "--train-slower-fraction", "1.5", "--out-dir", str(tmp_path / "o")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "make_text.py: --train-slower-fraction 1.5: must be between 0 and 1"
    ]
