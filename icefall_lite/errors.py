"""The one exception type for mistakes a user can fix: a bad flag value, a missing or broken
file, a manifest entry that cannot be used.

Library code raises :class:`UsageError` with a message naming the flag, file or cut id and what
to do; the recipe scripts (through :func:`icefall_lite.cli.errors.run_main`) print it as one
line ``script: error: message`` and exit with status 1. Any other exception is a bug and keeps
its traceback. ``UsageError`` is a ``ValueError``, so code written against ``ValueError`` keeps
catching it.
"""

import os

__all__ = ["DEBUG_ENV", "USER_ERRORS", "UsageError", "debug_from_env"]

# Set to 1/true/yes (or --debug on a recipe script's command line): user errors keep their
# tracebacks.
DEBUG_ENV = "ICEFALL_LITE_DEBUG"


class UsageError(ValueError):
    """Bad input the user can correct; the message names it (flag, file, cut) and the fix."""


# What counts as the user's mistake: a UsageError, or an OSError (missing file, not a
# directory, permission denied, disk full).
USER_ERRORS = (UsageError, OSError)


def debug_from_env() -> bool:
    """``ICEFALL_LITE_DEBUG`` is set to 1/true/yes."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes")
