"""Exception classes shared by the whole suite.

Messages follow one pattern: what is wrong, what was expected, and what was
received, so that the command line can show them as one line.
"""


class RnnkitError(Exception):
    """Base class of every error rnnkit raises on purpose."""


class UsageError(RnnkitError, ValueError):
    """Bad input from the caller: wrong shape, dtype, value or option.

    The command line exits with status 2 for these.
    """


class DataNotFoundError(RnnkitError, FileNotFoundError):
    """A dataset file is missing from every place it was looked for."""


class ModelFileError(RnnkitError):
    """A model file is missing, truncated, corrupt or of the wrong kind."""


class ExportError(RnnkitError):
    """A model cannot be lowered to builtin TFLite ops."""
