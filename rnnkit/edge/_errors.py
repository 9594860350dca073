"""Errors of the edge runtime.

The edge runtime imports no other rnnkit module (it ships alone to a device), so
it has its own small hierarchy; `rnnkit.exporters.cli` turns these into the
command line's one-line errors.
"""


class EdgeError(Exception):
    """Base class of every error the edge runtime raises on purpose."""


class ModelFileError(EdgeError, ValueError):
    """A model file is missing, truncated, corrupt, tampered with or unsupported."""


class EdgeUsageError(EdgeError, ValueError):
    """Bad input at inference: wrong shape, dtype or call for this model."""
