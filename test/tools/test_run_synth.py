"""tools/run_synth.sh against a fake recipe tree: stage selection, missing stages, failures."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "tools" / "run_synth.sh"

# A stand-in for a recipe script: records its argv, then does what FAKE_ACTION says.
FAKE_SCRIPT = """#!/usr/bin/env python3
import os, sys
from pathlib import Path
name = Path(sys.argv[0]).stem
with open("calls.txt", "a") as f:
    f.write(name + " " + " ".join(sys.argv[1:]) + "\\n")
if name == os.environ.get("FAKE_FAIL"):
    sys.exit(3)
if name == "train":
    exp = Path(sys.argv[sys.argv.index("--exp-dir") + 1])
    exp.mkdir(parents=True, exist_ok=True)
    for e in range(1, int(os.environ.get("FAKE_EPOCHS", "3")) + 1):
        (exp / f"epoch-{e}.pt").write_text("x")
if name == "decode":
    out = Path(sys.argv[sys.argv.index("--exp-dir") + 1]) / "greedy_search"
    out.mkdir(parents=True, exist_ok=True)
    summary = out / "wer-summary-test-synth-greedy_search.txt"
    summary.write_text("settings\\tWER\\ngreedy\\t12.34\\n")
"""


def make_tree(tmp_path: Path, scripts: list[str]) -> Path:
    """A repo-shaped folder with tools/run_synth.sh and the given recipe scripts."""
    (tmp_path / "tools").mkdir()
    shutil.copy(SCRIPT, tmp_path / "tools" / "run_synth.sh")
    recipe = tmp_path / "egs" / "synth" / "ASR"
    (recipe / "zipformer").mkdir(parents=True)
    for name in scripts:
        path = recipe / name
        if name == "prepare.sh":
            path.write_text('#!/usr/bin/env bash\necho "prepare $*" >> calls.txt\n')
        else:
            path.write_text(FAKE_SCRIPT)
        path.chmod(0o755)
    return tmp_path


def run(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    # The fake venv is the interpreter running the tests: run_synth.sh only sources bin/activate.
    venv = Path(sys.prefix)
    full_env = {**os.environ, "VENV": str(venv), **env}
    return subprocess.run(
        ["bash", str(root / "tools" / "run_synth.sh"), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def calls(root: Path) -> list[str]:
    path = root / "egs" / "synth" / "ASR" / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture(autouse=True)
def _need_venv() -> None:
    if not (Path(sys.prefix) / "bin" / "activate").exists():
        pytest.skip("tests must run inside a virtual environment")


def test_missing_stages_are_reported_and_skipped(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["prepare.sh"])
    proc = run(root, "--stage", "1")
    assert proc.returncode == 0, proc.stderr
    assert "prepare" in calls(root)[0]
    out = proc.stdout
    assert "stage 2 train not available yet: egs/synth/ASR/zipformer/train.py missing" in out
    assert "zipformer/decode.py missing" in out
    assert "zipformer/export.py missing" in out


def test_full_run_chooses_epoch_and_avg_and_prints_wer(tmp_path: Path) -> None:
    scripts = ["prepare.sh", "zipformer/train.py", "zipformer/decode.py", "zipformer/export.py"]
    root = make_tree(tmp_path, scripts)
    proc = run(root, "--stage", "1", "--num-epochs", "3", "--avg", "5", FAKE_EPOCHS="3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = calls(root)
    assert [line.split()[0] for line in lines] == ["prepare", "train", "decode", "export"]
    assert "--num-epochs 3" in lines[1]
    # avg is capped below the newest epoch so the running-average model has a start checkpoint.
    assert "--epoch 3 --avg 2" in lines[2]
    assert "--decoding-method greedy_search" in lines[2]
    assert "--epoch 3 --avg 2" in lines[3] and "--jit 1" in lines[3]
    assert "12.34" in proc.stdout


def test_single_epoch_uses_plain_checkpoint(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["zipformer/train.py", "zipformer/decode.py"])
    proc = run(root, "--stage", "2", "--stop-stage", "3", FAKE_EPOCHS="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    decode = calls(root)[1]
    assert "--epoch 1 --avg 1 --use-averaged-model 0" in decode


def test_stop_stage_limits_the_run(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["prepare.sh", "zipformer/train.py"])
    proc = run(root, "--stage", "1", "--stop-stage", "1")
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in calls(root)] == ["prepare"]
    assert "stage 2" not in proc.stdout


def test_failing_stage_stops_with_its_name(tmp_path: Path) -> None:
    scripts = ["prepare.sh", "zipformer/train.py", "zipformer/decode.py"]
    root = make_tree(tmp_path, scripts)
    proc = run(root, "--stage", "1", FAKE_FAIL="train")
    assert proc.returncode != 0
    assert "FAILED in stage '2 train'" in proc.stderr
    assert [line.split()[0] for line in calls(root)] == ["prepare", "train"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--stage", "x"], "--stage expects a non-negative integer"),
        (["--avg"], "--avg needs a value"),
        (["--bogus"], "unknown option '--bogus'"),
    ],
)
def test_bad_options_are_named(tmp_path: Path, args: list[str], message: str) -> None:
    root = make_tree(tmp_path, [])
    proc = run(root, *args)
    assert proc.returncode == 2
    assert message in proc.stderr
