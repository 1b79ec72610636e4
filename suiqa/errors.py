"""Errors that the CLI turns into one clear line (no traceback wall)."""


class SuiqaError(Exception):
    """A user-facing failure: the message says what went wrong and what to do about it."""

    exit_code = 2
