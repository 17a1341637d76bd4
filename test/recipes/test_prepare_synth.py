"""egs/synth/ASR/prepare.sh end to end in a tiny configuration."""

import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "egs" / "synth" / "ASR"
TOOLS = ("espeak-ng", "flite", "festival", "sox")


def run_prepare(work: Path, *args: str) -> subprocess.CompletedProcess:
    for name in ("prepare.sh", "local", "shared"):
        if not (work / name).exists():
            os.symlink(RECIPE / name, work / name)
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(
        ["bash", "prepare.sh", *args], cwd=work, env=env, capture_output=True, text=True
    )


def _prepare_default(name: str) -> str:
    """The default value prepare.sh assigns to ``name`` (``name=value  # comment`` lines)."""
    for line in (RECIPE / "prepare.sh").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].split()[0]
    raise AssertionError(f"prepare.sh sets no default for {name}")


def read_tsv(path: Path) -> list:
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\"))


def count_lines(path: Path) -> int:
    with gzip.open(path, "rt") as f:
        return sum(1 for _ in f)


@pytest.mark.slow
def test_prepare_synth_tiny(tmp_path):
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"TTS tools missing ({', '.join(missing)}): run tools/setup.sh")
    # No skip when shared/parse_options.sh is missing: it is committed, so that is a failure.
    sizes = ["--num-train", "40", "--num-dev", "6", "--num-test-synth", "8"]
    kokoro = ["--num-train-kokoro", "2", "--kokoro-copies", "2", "--num-train-piper", "3"]
    result = run_prepare(
        tmp_path, *sizes, *kokoro, "--num-test-human", "5", "--vocab-size", "40", "--nj", "2"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    data = tmp_path / "data"
    for split, num in (("train", 47), ("dev", 6), ("test-synth", 8), ("test-human", 5)):
        cuts = data / "fbank" / f"synth_cuts_{split}.jsonl.gz"
        assert count_lines(cuts) == num, split
    with gzip.open(data / "fbank" / "synth_cuts_test-human.jsonl.gz", "rt") as f:
        cut = json.loads(f.readline())
    assert cut["features"]["num_features"] == 80 and cut["supervisions"][0]["text"]
    assert count_lines(data / "fbank" / "synth_cuts_noise.jsonl.gz") > 50

    # Voices: dev uses train's, test-synth none of them and an engine train never used.
    rows = {split: read_tsv(data / "local" / f"{split}.tsv") for split in ("train", "dev")}
    rows["test-synth"] = read_tsv(data / "local" / "test-synth.tsv")
    train_voices = {(r[2], r[3]) for r in rows["train"]}
    test_voices = {(r[2], r[3]) for r in rows["test-synth"]}
    assert not train_voices & test_voices
    assert {r[2] for r in rows["dev"]} <= {r[2] for r in rows["train"]}
    # No test sentence (human or synthetic) in train/dev text.
    human = set((data / "local" / "test-human.txt").read_text().splitlines())
    test_text = human | {r[7] for r in rows["test-synth"]}
    assert not test_text & {r[7] for r in rows["train"] + rows["dev"]}
    # Train/dev draw sox effect chains (column 9); test-synth stays clean.
    assert any(r[8] for r in rows["train"]) and not any(r[8] for r in rows["test-synth"])

    tokens = (data / "lang_bpe_40" / "tokens.txt").read_text().splitlines()
    assert tokens[:3] == ["<blk> 0", "<sos/eos> 1", "<unk> 2"]
    assert "| train | 47 |" in result.stdout  # the summary table with hours per split
    # Two Kokoro sentences, two copies each (the second through its own sox effect chain).
    kokoro_rows = [r for r in rows["train"] if r[2] == "kokoro"]
    assert len(kokoro_rows) == 4 and {r[7] for r in kokoro_rows[:2]} == {kokoro_rows[0][7]}
    assert kokoro_rows[0][8] == "" and kokoro_rows[1][8] != ""
    # Three Piper utterances, each with its own text, in the train cuts (audio was made).
    piper_rows = [r for r in rows["train"] if r[2] == "piper"]
    assert len(piper_rows) == 3 and len({r[7] for r in piper_rows}) == 3
    with gzip.open(data / "fbank" / "synth_cuts_train.jsonl.gz", "rt") as f:
        train_ids = {json.loads(line)["id"] for line in f}
    assert {r[0] for r in piper_rows} <= train_ids
    assert "took" in result.stdout

    # Same seed, same text: stage 2 again into another folder.
    again = tmp_path / "again"
    again.mkdir()
    subprocess.run(
        [
            sys.executable,
            str(RECIPE / "local" / "make_text.py"),
            *sizes,
            *kokoro,
            # prepare.sh's default --train-slower-fraction, so that the rates match as well
            "--train-slower-fraction",
            _prepare_default("train_slower_fraction"),
            "--human-transcripts",
            str(data / "local" / "test-human.txt"),
            "--out-dir",
            str(again),
        ],
        check=True,
        capture_output=True,
    )
    assert read_tsv(again / "train.tsv") == rows["train"]

    # A missing stage output is a one-line error naming the stage that makes it.
    (data / "fbank" / "synth_cuts_train.jsonl.gz").unlink()
    (data / ".stage6.done").unlink()
    broken = run_prepare(tmp_path, "--stage", "6", "--stop-stage", "6", "--vocab-size", "40")
    assert broken.returncode != 0
    assert "synth_cuts_train.jsonl.gz" in broken.stderr and "fbank stage" in broken.stderr
