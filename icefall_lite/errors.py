"""The one exception type for mistakes a user can fix: a bad flag value, a missing or broken
file, a manifest entry that cannot be used.

Library code raises :class:`UsageError` with a message naming the flag, file or cut id and what
to do; the recipe scripts (through :func:`icefall_lite.cli.errors.run_main`) print it as one
line ``script: error: message`` and exit with status 1. Any other exception is a bug and keeps
its traceback. ``UsageError`` is a ``ValueError``, so code written against ``ValueError`` keeps
catching it.
"""

__all__ = ["UsageError"]


class UsageError(ValueError):
    """Bad input the user can correct; the message names it (flag, file, cut) and the fix."""
