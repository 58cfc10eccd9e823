"""Errors a user can act on. Command-line entry points print them as one line and exit 2."""


class UserError(RuntimeError):
    """Something is wrong with the input or the configuration; the message says what to do."""
