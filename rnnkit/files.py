"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every writer in the core, the exporters and the apps goes through these, so that
an interrupted run leaves no half-written model, manifest or metrics file. (The
edge runtime only reads files and may not import the core.)

Example:
    >>> from rnnkit.files import atomic_write_json
    >>> atomic_write_json("/tmp/metrics.json", {"accuracy": 0.9})  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _default_file_mode() -> int:
    """0o666 less the process umask: the mode `open()` would give a new file."""
    try:
        # Linux reports the umask without changing it (no race with other threads).
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    # Elsewhere os.umask can only be read by setting it; set it back at once.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_save(path: str | os.PathLike, save: Callable[[Path], None]) -> Path:
    """Calls `save(temporary_path)`, then renames the result onto `path`.

    The temporary file sits in the same folder (so the rename is atomic) and keeps
    the suffix of `path`, for writers that choose the format by suffix
    (`savefig`, `np.savez`). It gets the mode a plain `open()` would give, not
    the 0600 of `mkstemp`, because outputs are meant to be shared.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix
    )
    os.close(handle)
    try:
        save(Path(temporary))
        os.chmod(temporary, _default_file_mode())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Writes bytes, or text as UTF-8, to `path` atomically."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return atomic_save(path, lambda temporary: temporary.write_bytes(payload))


def atomic_write_json(path: str | os.PathLike, payload, **dumps_options) -> Path:
    """Writes `payload` as JSON (indent 2 unless told otherwise) atomically."""
    dumps_options.setdefault("indent", 2)
    return atomic_write(path, json.dumps(payload, **dumps_options))


def save_figure(figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Saves a matplotlib figure as a PNG atomically, then closes it."""
    import matplotlib.pyplot as plt

    try:
        return atomic_save(path, lambda temporary: figure.savefig(temporary, dpi=dpi))
    finally:
        plt.close(figure)
