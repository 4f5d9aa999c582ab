"""The library's own exceptions, importable from every layer.

The command line (:mod:`h2t_lib.apps.cli`) prints a :class:`UserError` as one line and exits with code 2.
"""


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit code 2."""


class TrainingError(UserError):
    """Training cannot go on (e.g. the loss became NaN); the CLI prints it as one line."""
