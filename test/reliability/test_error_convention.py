"""icefall_lite/cli/errors.py: the one error convention of every recipe script."""

import argparse
import errno

import pytest

from icefall_lite.checkpoint import CheckpointError
from icefall_lite.cli.errors import UsageError, run_main


def _exit(main, argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_main("tool.py", main, argv)
    return exit_.value.code, capsys.readouterr().err


def _raise(error):
    def main(argv):
        raise error

    return main


@pytest.mark.parametrize(
    "error, line",
    [
        (UsageError("--beam-size must be >= 1, got 0"), "--beam-size must be >= 1, got 0"),
        (CheckpointError("exp/epoch-3.pt: cannot read"), "exp/epoch-3.pt: cannot read"),
        (FileNotFoundError("--tokens t.txt: no such file"), "--tokens t.txt: no such file"),
        (
            OSError(errno.ENOSPC, "No space left on device", "exp/.epoch-2.pt.x.tmp"),
            "exp/.epoch-2.pt.x.tmp: No space left on device (free some space",
        ),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "exp/log"), "exp/log: Not a dir"),
    ],
)
def test_user_errors_are_one_line_and_exit_1(capsys, error, line):
    code, err = _exit(_raise(error), [], capsys)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("tool.py: error: " + line)


def test_multi_line_message_is_joined(capsys):
    code, err = _exit(_raise(UsageError("first\n  second")), [], capsys)
    assert err.strip() == "tool.py: error: first second"


def test_argparse_error_is_one_line_without_the_usage_block(capsys):
    def main(argv):
        parser = argparse.ArgumentParser()
        parser.add_argument("--beam-size", type=int, default=4)
        parser.parse_args(argv)

    code, err = _exit(main, ["--beam-size", "four"], capsys)
    assert code == 1
    assert err.strip().splitlines() == [
        "tool.py: error: argument --beam-size: invalid int value: 'four' (see --help)"
    ]
    # argparse is left as it was after the run
    with pytest.raises(SystemExit):
        argparse.ArgumentParser().parse_args(["--nope"])


def test_debug_flag_or_environment_keeps_the_traceback(capsys, monkeypatch):
    seen = []

    def main(argv):
        seen.append(argv)
        raise UsageError("bad")

    with pytest.raises(UsageError):
        run_main("tool.py", main, ["--debug", "--x", "1"])
    assert seen == [["--x", "1"]]  # --debug is not passed on
    monkeypatch.setenv("ICEFALL_LITE_DEBUG", "1")
    with pytest.raises(UsageError):
        run_main("tool.py", main, [])


def test_unexpected_exceptions_keep_their_traceback():
    with pytest.raises(KeyError):
        run_main("tool.py", _raise(KeyError("internal")), [])
    with pytest.raises(RuntimeError):
        run_main("tool.py", _raise(RuntimeError("a bug")), [])


@pytest.mark.parametrize("status, code", [(None, 0), (0, 0), (1, 1)])
def test_status_is_the_exit_code(capsys, status, code):
    assert _exit(lambda argv: status, [], capsys)[0] == code
