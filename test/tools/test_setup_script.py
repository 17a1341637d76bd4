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
