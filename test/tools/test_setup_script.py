"""tools/setup.sh and tools/test.sh option handling and failure messages (no installs)."""

import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(*cmd: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", *cmd], capture_output=True, text=True, timeout=60, env=env, cwd=REPO_ROOT
    )


@pytest.mark.parametrize("script", ["tools/setup.sh", "tools/test.sh", "tools/run_synth.sh"])
def test_help_describes_usage(script: str) -> None:
    proc = run(script, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout


@pytest.mark.parametrize("script", ["tools/setup.sh", "tools/test.sh"])
def test_unknown_option_is_rejected(script: str) -> None:
    proc = run(script, "--frobnicate")
    assert proc.returncode == 2
    assert "unknown option '--frobnicate'" in proc.stderr


def test_failure_names_the_step(tmp_path: Path) -> None:
    env = {**os.environ, "DEBIAN_PACKAGES": str(tmp_path / "nope.txt")}
    proc = run("tools/setup.sh", "--no-build", env=env)
    assert proc.returncode != 0
    assert "nope.txt does not exist" in proc.stderr
    assert "FAILED in step 'apt'" in proc.stderr


def test_ci_runs_exactly_the_test_command() -> None:
    lines = [
        line
        for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == ['exec "$(dirname "$0")/../tools/test.sh"']


@pytest.mark.parametrize("value", ["abc", "0", "-2", "2.5"])
def test_bad_test_workers_is_one_line_before_anything_runs(value: str) -> None:
    env = {**os.environ, "TEST_WORKERS": value}
    proc = run("tools/test.sh", "--no-setup", "--no-lint", env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"test.sh: TEST_WORKERS must be a positive integer, got '{value}'"
    assert "==> pytest" not in proc.stdout


def test_missing_xdist_runs_in_one_process(tmp_path: Path) -> None:
    # A venv without pytest-xdist: a python whose "import xdist" fails, the rest delegated to ours.
    import sys

    fake_venv = tmp_path / "venv"
    (fake_venv / "bin").mkdir(parents=True)
    fake_python = fake_venv / "bin" / "python"
    fake_python.write_text(
        "#!/usr/bin/env bash\n"
        'if [[ "$1" == "-c" && "$2" == "import xdist" ]]; then exit 1; fi\n'
        'if [[ "$1" == "-m" && "$2" == "pytest" ]]; then echo "PYTEST-ARGS: $*"; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    fake_python.chmod(0o755)
    env = {**os.environ, "VENV": str(fake_venv), "TEST_WORKERS": "3"}
    proc = run("tools/test.sh", "--no-setup", "--no-lint", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "pytest-xdist is not installed" in proc.stderr
    assert "run tools/setup.sh" in proc.stderr
    pytest_line = next(line for line in proc.stdout.splitlines() if line.startswith("PYTEST-ARGS"))
    assert "-n" not in pytest_line.split()
