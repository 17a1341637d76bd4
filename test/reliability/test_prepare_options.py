"""prepare.sh's command line (shared/stages.sh, sourced after shared/parse_options.sh): bad
--stage/--stop-stage values and stray positional arguments are one line and exit 1, before any
stage runs (they used to run nothing and exit 0)."""

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """#!/usr/bin/env bash
set -eou pipefail
stage=0
stop_stage=100
nj=2
. {shared}/parse_options.sh || exit 1
. {shared}/stages.sh || exit 1
mkdir -p data
run_stage 1 "one" echo ran-1
run_stage 2 "two" echo ran-2
"""


@pytest.fixture(params=["synth", "librispeech"])
def script(tmp_path, request):
    path = tmp_path / "prepare.sh"
    path.write_text(SCRIPT.format(shared=REPO / "egs" / request.param / "ASR" / "shared"))
    return path


def _run(script, *args):
    return subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, timeout=30, cwd=script.parent
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--stage", "abc", "--stop-stage", "2"],
            "prepare.sh: --stage must be an integer, got 'abc'",
        ),
        (["--stop-stage", "2.5"], "prepare.sh: --stop-stage must be an integer, got '2.5'"),
        (["--stage", ""], "prepare.sh: --stage must be an integer, got ''"),
        (
            ["--stage", "9", "--stop-stage", "2"],
            "prepare.sh: --stage 9 is after --stop-stage 2: nothing would run",
        ),
        (
            ["extra"],
            "prepare.sh: unexpected argument 'extra': options are --name value (see --help)",
        ),
        (
            ["--stage", "1", "data/x"],
            "prepare.sh: unexpected argument 'data/x': options are --name value (see --help)",
        ),
        (["--", "x"], "prepare.sh: unexpected argument 'x': options are --name value (see --help)"),
    ],
)
def test_bad_command_lines_are_one_line_and_run_nothing(script, args, message):
    out = _run(script, *args)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [message]
    assert "ran-" not in out.stdout
    assert not (script.parent / "data").exists()


@pytest.mark.parametrize(
    "args, ran",
    [
        ([], ["ran-1", "ran-2"]),
        (["--stage", "2"], ["ran-2"]),
        (["--stage", "1", "--stop-stage", "1"], ["ran-1"]),
        (["--stage", "-1", "--stop-stage", "0"], []),
        (["--stage=2", "--stop-stage=2"], ["ran-2"]),
    ],
)
def test_good_command_lines_run_their_stages(script, args, ran):
    out = _run(script, *args)
    assert out.returncode == 0, out.stderr
    assert [line for line in out.stdout.splitlines() if line.startswith("ran-")] == ran


def test_real_prepare_scripts_source_the_checks():
    for dataset in ("synth", "librispeech"):
        text = (REPO / "egs" / dataset / "ASR" / "prepare.sh").read_text()
        assert text.index("shared/parse_options.sh") < text.index("shared/stages.sh")
