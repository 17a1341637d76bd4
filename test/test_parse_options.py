import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PARSER = REPO_ROOT / "egs/synth/ASR/shared/parse_options.sh"
LIBRISPEECH_PARSER = REPO_ROOT / "egs/librispeech/ASR/shared/parse_options.sh"

SCRIPT = """#!/usr/bin/env bash
set -euo pipefail
stage=0
stop_stage=100
name="caller's own"    # internal names of the parser must not clobber this
use_gpu=false
langs="en"
help_message="Prepares things."
PATH_LIKE=/not/an/option

. {parser}

late_variable=1
echo "stage=$stage stop_stage=$stop_stage name=$name use_gpu=$use_gpu langs=$langs"
echo "args=$#:$*"
echo "leaked=$(compgen -v __po_ || true)"
"""


@pytest.fixture(params=["synth", "librispeech"])
def script(tmp_path, request):
    parser = PARSER if request.param == "synth" else LIBRISPEECH_PARSER
    path = tmp_path / "prepare.sh"
    path.write_text(SCRIPT.format(parser=parser))
    path.chmod(0o755)
    return path


def run(script, *args):
    return subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, timeout=30, cwd=script.parent
    )


def test_one_real_copy():
    assert LIBRISPEECH_PARSER.is_symlink()
    assert os.readlink(LIBRISPEECH_PARSER) == "../../../synth/ASR/shared/parse_options.sh"
    assert LIBRISPEECH_PARSER.resolve() == PARSER.resolve()
    assert not PARSER.is_symlink()


def test_defaults_kept_without_options(script):
    out = run(script)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:3] == [
        "stage=0 stop_stage=100 name=caller's own use_gpu=false langs=en",
        "args=0:",
        "leaked=",
    ]


def test_options_set_variables_and_leave_arguments(script):
    out = run(
        script,
        "--stage",
        "-1",
        "--stop-stage=5",
        "--use-gpu",
        "true",
        "--langs",
        "en de",
        "data/a",
        "--not-parsed",
        "x",
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "stage=-1 stop_stage=5 name=caller's own use_gpu=true langs=en de"
    assert lines[1] == "args=3:data/a --not-parsed x"
    assert lines[2] == "leaked="


def test_double_dash_ends_options(script):
    out = run(script, "--stage", "2", "--", "--stage", "3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1] == "args=2:--stage 3"


def test_help_lists_variables_with_current_values(script):
    out = run(script, "--stage", "4", "--help")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0] == "Usage: prepare.sh [options] [arguments]"
    assert "Prepares things." in lines
    options = lines[lines.index("Options (current values):") + 1 :]
    assert options == [
        "  --stage 4",
        "  --stop-stage 100",
        "  --name caller's own",
        "  --use-gpu false",
        "  --langs en",
    ]


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--sage", "3"],
            "prepare.sh: unknown option --sage; valid options: --stage "
            "--stop-stage --name --use-gpu --langs",
        ),
        (["--late-variable", "2"], "unknown option --late-variable"),
        (["--path-like", "x"], "unknown option --path-like"),
        (["--help-message", "x"], "unknown option --help-message"),
        (["--stage"], "prepare.sh: option --stage needs a value"),
        (
            ["--stage", "--stop-stage", "3"],
            "option --stage needs a value, got the option " "--stop-stage",
        ),
        (["--use-gpu", "yes"], "prepare.sh: option --use-gpu takes true or false, got 'yes'"),
        (["--use-gpu="], "option --use-gpu takes true or false, got ''"),
    ],
)
def test_errors_are_one_clear_line(script, args, message):
    out = run(script, *args)
    assert out.returncode == 1
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1
    assert message in out.stderr


def test_sourced_from_an_unreadable_caller_accepts_declared_variables(tmp_path):
    # `bash -c` has no script file to read: fall back to "any declared lower-case variable".
    command = f'foo_bar=1; set -- --foo-bar 7; . {PARSER}; echo "$foo_bar"'
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "7", out.stderr
    command = f"set -- --undeclared 7; . {PARSER}"
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "unknown option --undeclared" in out.stderr
