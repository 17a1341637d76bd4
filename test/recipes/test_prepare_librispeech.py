"""egs/librispeech/ASR/prepare.sh end to end on a tiny corpus in LibriSpeech's exact layout."""

import gzip
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "egs" / "librispeech" / "ASR"
WORDS = "THE QUICK BROWN FOX JUMPS OVER LAZY DOG HELLO WORLD".split()


def tone(rng: np.random.Generator, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    signal = 0.2 * np.sin(2 * np.pi * rng.uniform(100, 800) * t) + 0.02 * rng.standard_normal(
        t.size
    )
    return signal.astype(np.float32)


def make_librispeech(root: Path) -> None:
    """LibriSpeech/<part>/<speaker>/<chapter>/ with <spk>-<chapter>-<utt>.flac files and
    <spk>-<chapter>.trans.txt, and musan/{music,speech,noise} with music ANNOTATIONS."""
    rng = np.random.default_rng(0)
    layout = {
        "train-clean-100": [(19, 198), (26, 495)],
        "train-clean-360": [(14, 208)],
        "train-other-500": [(20, 205)],
        "dev-clean": [(84, 121)],
        "test-clean": [(61, 70)],
    }
    for part, chapters in layout.items():
        for speaker, chapter in chapters:
            folder = root / "LibriSpeech" / part / str(speaker) / str(chapter)
            folder.mkdir(parents=True)
            lines = []
            for index in range(3):
                utt = f"{speaker}-{chapter}-{index:04d}"
                sf.write(str(folder / f"{utt}.flac"), tone(rng, rng.uniform(1.5, 3.0)), 16000)
                lines.append(f"{utt} " + " ".join(rng.choice(WORDS, size=4)))
            (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    for part, sub in (("music", "fma"), ("speech", "librivox"), ("noise", "free-sound")):
        folder = root / "musan" / part / sub
        folder.mkdir(parents=True)
        name = f"{part}-{sub}-0000"
        sf.write(str(folder / f"{name}.wav"), tone(rng, 12.0), 16000)
        if part == "music":
            (folder / "ANNOTATIONS").write_text(f"{name} pop N someone\n")


def run_prepare(work: Path, *args: str) -> subprocess.CompletedProcess:
    for name in ("prepare.sh", "local", "shared"):
        if not (work / name).exists():
            os.symlink(RECIPE / name, work / name)
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(
        ["bash", "prepare.sh", *args], cwd=work, env=env, capture_output=True, text=True
    )


def count_lines(path: Path) -> int:
    with gzip.open(path, "rt") as f:
        return sum(1 for _ in f)


def read_ids(path: Path) -> list:
    with gzip.open(path, "rt") as f:
        return [json.loads(line)["id"] for line in f]


def write_cuts(path: Path, ids: list) -> None:
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps({"id": cut_id, "type": "MonoCut"}) + "\n" for cut_id in ids)


def run_combine(monkeypatch, *args: str) -> None:
    """local/combine_train_cuts.py in this process (a subprocess would re-import torch)."""
    script = RECIPE / "local" / "combine_train_cuts.py"
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    runpy.run_path(str(script), run_name="__main__")


def test_combine_train_cuts_shuffles_reproducibly(tmp_path, monkeypatch):
    inputs = []
    for part, count in (("train-clean-100", 30), ("train-clean-360", 20), ("train-other-500", 10)):
        inputs.append(str(tmp_path / f"librispeech_cuts_{part}.jsonl.gz"))
        write_cuts(Path(inputs[-1]), [f"{part}-{i}" for i in range(count)])
    outputs = [tmp_path / name / "librispeech_cuts_train-all-shuf.jsonl.gz" for name in "ab"]
    for output in outputs:
        run_combine(monkeypatch, "--inputs", *inputs, "--output", str(output))
    concatenated = sum((read_ids(Path(path)) for path in inputs), [])
    combined = read_ids(outputs[0])
    assert sorted(combined) == sorted(concatenated)
    assert combined != concatenated
    assert combined == read_ids(outputs[1])  # same seed, same order
    # the first 30 lines are not all from train-clean-100: the parts are mixed
    assert any(not cut_id.startswith("train-clean-100") for cut_id in combined[:30])

    with pytest.raises(SystemExit, match="nowhere.jsonl.gz not found"):
        run_combine(monkeypatch, "--inputs", "nowhere.jsonl.gz", "--output", str(outputs[0]))


@pytest.mark.slow
def test_prepare_librispeech_tiny(tmp_path):
    # No skip when shared/parse_options.sh is missing: it is committed, so that is a failure.
    corpus = tmp_path / "corpus"
    make_librispeech(corpus)
    work = tmp_path / "recipe"
    work.mkdir()

    wrong = run_prepare(work, "--dl-dir", str(tmp_path / "nowhere"), "--stage", "1")
    assert wrong.returncode != 0
    assert "nowhere" in wrong.stderr and "stage 0" in wrong.stderr

    result = run_prepare(
        work, "--dl-dir", str(corpus), "--stage", "1", "--vocab-size", "30", "--nj", "1"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    fbank = work / "data" / "fbank"
    # 6 training utterances, plus their 0.9 and 1.1 speed-perturbed copies.
    assert count_lines(fbank / "librispeech_cuts_train-clean-100.jsonl.gz") == 18
    # --full-libri's manifest: the three training parts (9 cuts each for 360 and 500), shuffled.
    parts = [
        read_ids(fbank / f"librispeech_cuts_{p}.jsonl.gz")
        for p in ("train-clean-100", "train-clean-360", "train-other-500")
    ]
    combined = read_ids(fbank / "librispeech_cuts_train-all-shuf.jsonl.gz")
    assert sorted(combined) == sorted(sum(parts, [])) and len(combined) == 36
    assert combined != sum(parts, [])
    assert count_lines(fbank / "librispeech_cuts_dev-clean.jsonl.gz") == 3
    assert count_lines(fbank / "librispeech_cuts_test-clean.jsonl.gz") == 3
    # Three 12 s MUSAN recordings -> one 10 s window each (the 2 s tails are dropped).
    assert count_lines(fbank / "musan_cuts.jsonl.gz") == 3
    with gzip.open(fbank / "librispeech_cuts_dev-clean.jsonl.gz", "rt") as f:
        cut = json.loads(f.readline())
    assert cut["features"]["num_features"] == 80
    assert cut["supervisions"][0]["text"].split()[0] in WORDS

    tokens = (work / "data" / "lang_bpe_30" / "tokens.txt").read_text().splitlines()
    assert tokens[:3] == ["<blk> 0", "<sos/eos> 1", "<unk> 2"] and len(tokens) == 30
    for stage in range(1, 6):
        assert (work / "data" / f".stage{stage}.done").is_file()
