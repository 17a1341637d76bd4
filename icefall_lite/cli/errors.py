"""One error convention for every recipe script.

A mistake the user can fix (a bad flag value, a missing or broken file, an unusable manifest
entry, a full disk) is printed as one line on stderr, ``<script>: error: <message>``, and the
script exits with status 1. The message names the flag, file or cut and what to do. A full
traceback is printed only with ``--debug`` on the command line or ``ICEFALL_LITE_DEBUG=1`` in the
environment. Any other exception is a bug in the library and keeps its traceback.

What counts as the user's mistake:

* :class:`~icefall_lite.errors.UsageError` (and its subclasses, e.g.
  :class:`~icefall_lite.checkpoint.CheckpointError`);
* ``OSError`` (missing file, not a directory, permission denied, no space left on device);
* an argparse error (unknown flag, bad value): argparse's usage block, dozens of lines for
  these scripts, is replaced by the one line and a pointer to ``--help``.

A recipe script's ``main()`` is ``run_main(Path(__file__).name, lambda argv: ...)``.
"""

import argparse
import contextlib
import errno
import os
import sys
from typing import Callable, Iterator, List, NoReturn, Optional, Sequence

from icefall_lite.errors import DEBUG_ENV, USER_ERRORS, UsageError, debug_from_env

__all__ = ["UsageError", "DEBUG_ENV", "debug_requested", "format_error", "run_main"]


def debug_requested(argv: Sequence[str]) -> bool:
    """``--debug`` in ``argv`` or ``ICEFALL_LITE_DEBUG`` set to 1/true/yes."""
    return "--debug" in argv or debug_from_env()


def format_error(error: BaseException) -> str:
    """The error's message on one line (an ``OSError`` as ``<file>: <reason>``)."""
    if isinstance(error, OSError) and not isinstance(error, UsageError) and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        message = f"{where}{error.strerror}"
        if error.errno == errno.ENOSPC:
            message += " (free some space, or point --exp-dir at a larger disk)"
    else:
        message = str(error) or type(error).__name__
    return " ".join(message.split())


class _ArgumentError(UsageError):
    """An argparse error, raised instead of printing the usage block."""


def _argparse_error(self: argparse.ArgumentParser, message: str) -> NoReturn:
    raise _ArgumentError(f"{message} (see --help)")


@contextlib.contextmanager
def _one_line_argparse_errors() -> Iterator[None]:
    original = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = _argparse_error  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original  # type: ignore[method-assign]


def run_main(
    prog: str, main: Callable[[List[str]], Optional[int]], argv: Optional[Sequence[str]] = None
) -> NoReturn:
    """Run a script's ``main(argv)`` under the error convention and exit with its status.

    Args:
      prog: the script's name for messages (``Path(__file__).name``).
      main: takes the command line without ``--debug``; returns the exit status (None: 0).
      argv: the command line (default ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    argv = [a for a in argv if a != "--debug"]
    saved_env = os.environ.get(DEBUG_ENV)
    if debug:
        # Spawned DDP ranks read it (icefall_lite.dist): they keep their tracebacks too.
        os.environ[DEBUG_ENV] = "1"
    try:
        if debug:
            status = main(argv)
        else:
            with _one_line_argparse_errors():
                status = main(argv)
    except USER_ERRORS as error:
        if debug:
            raise
        print(f"{prog}: error: {format_error(error)}", file=sys.stderr)
        sys.exit(1)
    finally:
        # Restored for a caller in the same process (tests call main() in-process).
        if saved_env is None:
            os.environ.pop(DEBUG_ENV, None)
        else:
            os.environ[DEBUG_ENV] = saved_env
    sys.exit(status or 0)
