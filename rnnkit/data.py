"""Where datasets live: one resolver used by every loader and command.

The search order is fixed and documented: an explicit directory (a `--data DIR`
flag or a function argument), then the `RNNKIT_DATA` environment variable, then
`~/.cache/rnnkit`. Nothing is ever downloaded here; `rnnkit data fetch` does
that on request.

Example:
    >>> from rnnkit.data import require_file
    >>> path = require_file("sentiment/sst2_glue/dev.tsv")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from rnnkit.errors import DataNotFoundError

ENV_VAR = "RNNKIT_DATA"
DEFAULT_CACHE = Path("~/.cache/rnnkit")


def candidate_dirs(explicit: str | os.PathLike | None = None) -> list[Path]:
    """Returns the data directories to search, in priority order."""
    candidates = []
    if explicit:
        candidates.append(Path(explicit).expanduser())
    env_value = os.environ.get(ENV_VAR)
    if env_value:
        candidates.append(Path(env_value).expanduser())
    candidates.append(DEFAULT_CACHE.expanduser())
    return candidates


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """Returns the first data directory that exists, or None.

    An explicit directory that does not exist is an error rather than a silent
    fall-through, since the caller asked for it by name.
    """
    if explicit and not Path(explicit).expanduser().is_dir():
        raise DataNotFoundError(
            f"The data directory given does not exist. Expected a folder laid out "
            f"as described in docs/DATA.md. Received: {explicit}"
        )
    for directory in candidate_dirs(explicit):
        if directory.is_dir():
            return directory
    return None


def find_file(relative: str, explicit: str | os.PathLike | None = None) -> Path | None:
    """Returns `relative` inside the first data directory that holds it, or None."""
    for directory in candidate_dirs(explicit):
        path = directory / relative
        if path.exists():
            return path
    return None


def require_file(relative: str, explicit: str | os.PathLike | None = None) -> Path:
    """Like `find_file`, but raises `DataNotFoundError` naming every place tried."""
    path = find_file(relative, explicit)
    if path is not None:
        return path
    tried = ", ".join(str(d / relative) for d in candidate_dirs(explicit))
    raise DataNotFoundError(
        f"Dataset file {relative!r} was not found. Looked in: {tried}. Set "
        f"--data DIR or {ENV_VAR}, or run `rnnkit data fetch NAME` when online."
    )
