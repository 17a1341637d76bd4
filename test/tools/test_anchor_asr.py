"""tools/bench/anchor_asr.py without the bench venv: hypothesis normalisation, utterance
selection, scoring, the markdown table and TSV, the worker's result protocol, and the one-line
report of a system that cannot run."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / "tools" / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


anchor = _load("anchor_asr")
worker = _load("anchor_worker")


@pytest.mark.parametrize(
    "raw, words",
    [
        ("Press 1, then #.", "PRESS ONE THEN POUND"),  # whisper's written form
        ("that agent is already logged on", "THAT AGENT IS ALREADY LOGGED ON"),  # pocketsphinx
        ("It's 10:30 - call-forward 42%!", "IT'S TEN THIRTY CALL FORWARD FORTY TWO PERCENT"),
        ("THANK YOU", "THANK YOU"),  # ours: already in the normal form
        ("", ""),
    ],
)
def test_hypotheses_get_the_references_normalisation(raw: str, words: str) -> None:
    assert anchor.normalize_hypothesis(raw) == words.split()


def test_selection_is_the_first_sorted_cut_ids() -> None:
    ids = ["test-human-c", "test-human-a", "test-human-b"]
    assert anchor.select_cut_ids(ids, 2) == ["test-human-a", "test-human-b"]
    assert anchor.select_cut_ids(ids, 0) == ["test-human-a", "test-human-b", "test-human-c"]


def _utterances():
    U = anchor.Utterance
    return [
        U("u1", "PRESS ONE THEN POUND".split(), "u1.wav", 2.0),
        U("u2", "TEN THIRTY".split(), "u2.wav", 1.0),
    ]


def test_score_normalises_then_counts_errors(tmp_path: Path) -> None:
    # u1: exact after normalisation; u2: "10:31" -> TEN THIRTY ONE, one insertion: 1 / 6 words.
    row = anchor.score(
        "whisper", "test-human", _utterances(), ["Press 1, then #.", "10:31"], [0.5, 0.1], tmp_path
    )
    assert (row.utterances, row.ref_words) == (2, 6)
    assert row.wer == pytest.approx(100 / 6)
    assert row.audio_seconds == pytest.approx(3.0)
    assert row.rtf == pytest.approx(0.2)
    errs = (tmp_path / "errs-test-human-whisper.txt").read_text()
    assert "%WER = 16.67" in errs
    assert "u2:\tTEN THIRTY (*->ONE)" in errs


def _rows():
    Row = anchor.Row
    return [
        Row("ours", "test-human", 2, 6, 100 / 6, 3.0, 0.6),
        Row("pocketsphinx", "test-synth", 1, 4, 25.0, 2.0, 0.123),
    ]


def test_markdown_table() -> None:
    assert anchor.markdown_table(_rows(), 1).splitlines() == [
        "| system | test set | utterances | WER % | RTF (1 thread) |",
        "|---|---|---|---|---|",
        "| ours | test-human | 2 | 16.67 | 0.2000 |",
        "| pocketsphinx | test-synth | 1 | 25.00 | 0.0615 |",
    ]
    assert "RTF (2 threads)" in anchor.markdown_table(_rows(), 2)


def test_tsv_is_written_whole_and_atomically(tmp_path: Path) -> None:
    out = tmp_path / "results.tsv"
    out.write_text("old\n")
    anchor.write_tsv(str(out), _rows())
    assert out.read_text().splitlines() == [
        "system\ttest_set\tutterances\tref_words\twer_percent\taudio_seconds\tdecode_seconds\trtf",
        "ours\ttest-human\t2\t6\t16.67\t3.000\t0.600\t0.2000",
        "pocketsphinx\ttest-synth\t1\t4\t25.00\t2.000\t0.123\t0.0615",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.tsv"]  # no temporary left


def test_wav_round_trip_through_the_worker_reader(tmp_path: Path) -> None:
    samples = np.array([0.0, 0.5, -0.5, 1.5], dtype=np.float32)  # 1.5 is clipped
    anchor.write_wav(tmp_path / "a.wav", samples)
    pcm = np.frombuffer(worker.read_pcm16(str(tmp_path / "a.wav")), dtype="<i2")
    assert pcm.tolist() == [0, 16384, -16384, 32767]


def test_worker_reports_missing_packages_and_errors(tmp_path: Path, monkeypatch) -> None:
    def missing(request):
        raise ImportError("No module named 'faster_whisper'", name="faster_whisper")

    monkeypatch.setitem(worker.SYSTEMS, "whisper", missing)
    assert worker.run({"system": "whisper", "wavs": []}) == {"missing": "faster_whisper"}
    assert "unknown system 'nope'" in worker.run({"system": "nope"})["error"]

    calls = []

    def echo(request):
        return (lambda wav: calls.append(wav) or wav.upper()), "echo"

    monkeypatch.setitem(worker.SYSTEMS, "pocketsphinx", echo)
    result = worker.run({"system": "pocketsphinx", "wavs": ["a", "b"]})
    assert result["texts"] == ["A", "B"] and result["info"] == "echo"
    assert len(result["seconds"]) == 2
    assert calls == ["a", "a", "b"]  # one untimed warm-up on the first file


def _tiny_recipe(tmp_path: Path, monkeypatch) -> Path:
    """A recipe folder with a one-cut test-human manifest, audio path relative to it."""
    from lhotse import CutSet, Recording, SupervisionSegment

    recipe = tmp_path / "recipe"
    (recipe / "download").mkdir(parents=True)
    anchor.write_wav(recipe / "download" / "u1.wav", np.zeros(8000, dtype=np.float32))
    monkeypatch.chdir(recipe)  # the manifest stores the path relative to the recipe folder
    recording = Recording.from_file("download/u1.wav", recording_id="u1")
    cut = recording.to_cut()
    cut.supervisions = [SupervisionSegment("u1", "u1", 0.0, recording.duration, text="HELLO WORLD")]
    (recipe / "data" / "fbank").mkdir(parents=True)
    CutSet.from_cuts([cut]).to_file(recipe / "data" / "fbank" / "synth_cuts_test-human.jsonl.gz")
    return recipe


def test_unavailable_systems_are_one_line_each(tmp_path: Path, monkeypatch) -> None:
    recipe = _tiny_recipe(tmp_path, monkeypatch)
    proc = subprocess.run(
        [sys.executable, str(BENCH_DIR / "anchor_asr.py"), "--recipe-dir", str(recipe),
         "--test-sets", "test-human", "--systems", "ours,whisper",
         "--our-jit", str(tmp_path / "missing.pt"), "--bench-venv", str(tmp_path / "no-venv")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "test-human: 1 utterances, 0.5 s of audio" in proc.stderr
    skipped = [line for line in proc.stdout.splitlines() if "skipped" in line]
    assert skipped == [
        f"ours: skipped, --our-jit {tmp_path / 'missing.pt'} does not exist "
        "(export it with zipformer/export.py --jit 1)",
        f"whisper: skipped, no bench venv at {tmp_path / 'no-venv'}; "
        "create it with tools/setup_bench.sh",
    ]
    assert proc.returncode == 1
    assert "every system was skipped" in proc.stderr
