"""Datasets of the music application, all turned into (time, 88) uint8 piano rolls.

Sources (`load_dataset(name)`):

* ``jsb``: `music/JSB_Chorales.pickle`, the Bach chorales of Boulanger-Lewandowski
  et al. (2012) at one step per quarter note. The pickle is read with
  `RestrictedUnpickler`, which can build only dicts, lists, tuples and numpy
  integer scalars: a pickle that names any other class or function (the way a
  malicious pickle runs code) is refused before anything is built.
* ``nottingham``, ``musedata``, ``piano``: the same benchmark's .mat files in
  `music/boulanger2012_mat/` (88-column rolls, column j = MIDI pitch 21 + j),
  read with `scipy.io.loadmat`. ``jsb-mat`` reads the chorales from there too.
* ``bach-music21``: the Bach chorales shipped with the `music21` package,
  sampled at each quarter note like the benchmark; needs no data folder. Its
  split is fixed by a hash of each file name (80/10/10), so it is the same on
  every machine. It is not the benchmark split: figures on it are not
  comparable with published ones.
* a folder of MIDI files (any other value): read with `mido`, quantized to
  `step` beats, split 80/10/10 by a hash of each file name.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
from pathlib import Path

import numpy as np

from rnnkit.data import require_file
from rnnkit.edge import music as edge_music
from rnnkit.errors import DataNotFoundError, UsageError

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
JSB_PICKLE = "music/JSB_Chorales.pickle"
MAT_FILES = {
    "jsb-mat": "music/boulanger2012_mat/JSB_Chorales.mat",
    "nottingham": "music/boulanger2012_mat/Nottingham.mat",
    "musedata": "music/boulanger2012_mat/MuseData.mat",
    "piano": "music/boulanger2012_mat/Piano_midi.mat",
}
DATASETS = ("jsb", *MAT_FILES, "bach-music21")
_MAT_KEYS = {"train": "traindata", "valid": "validdata", "test": "testdata"}


# --- the restricted unpickler ------------------------------------------------

_INTEGER_DTYPES = {"i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"}


def _safe_dtype(spec, align=False, copy=False):
    """`numpy.dtype` limited to the plain integer types a piano-roll pickle uses."""
    if not isinstance(spec, str) or spec not in _INTEGER_DTYPES:
        raise pickle.UnpicklingError(
            "The pickle asks for a numpy dtype other than a plain integer. Expected "
            f"one of {sorted(_INTEGER_DTYPES)}. Received: {spec!r}"
        )
    return np.dtype(spec, bool(align), bool(copy))


def _safe_scalar(dtype, data=None):
    """numpy's scalar reconstructor, for integer dtypes and raw bytes only."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "iu":
        raise pickle.UnpicklingError(
            f"The pickle holds a numpy scalar that is not an integer. Received: {dtype!r}"
        )
    if isinstance(data, str):
        # A Python 2 pickle read with encoding="latin1" gives the raw bytes as str.
        data = data.encode("latin1")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError(
            "The pickle holds a malformed numpy scalar. Expected "
            f"{dtype.itemsize} raw bytes. Received: {type(data).__name__}"
        )
    return np.frombuffer(data, dtype=dtype)[0]


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can build only builtin containers and numpy integers.

    Pickle runs code by naming a callable (any importable function or class)
    that it then calls with arguments of its choosing. This unpickler answers
    only three names, each with a checking stand-in rather than the real
    callable: numpy's scalar reconstructor (for `numpy.core.multiarray` and
    `numpy._core.multiarray`) and `numpy.dtype`, both limited to integer types.
    Every other name raises `pickle.UnpicklingError`, so nothing is imported or
    called. Dicts, lists, tuples, strings and numbers need no name at all.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "scalar"): _safe_scalar,
        ("numpy._core.multiarray", "scalar"): _safe_scalar,
        ("numpy", "dtype"): _safe_dtype,
    }

    def find_class(self, module, name):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"The pickle names {module}.{name}, which this loader does not allow. "
                "Expected only builtin containers and numpy integer scalars."
            ) from None


def restricted_loads(data: bytes):
    """Unpickles `data` with `RestrictedUnpickler` (latin1 for Python 2 pickles)."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def _validate_pitch_pickle(obj, source: str) -> dict[str, list[np.ndarray]]:
    """Checks the dict/list/list/tuple-of-pitches structure and builds rolls."""

    def fail(what: str):
        raise UsageError(
            f"{source} does not hold the expected structure: {what}. Expected a dict "
            "with keys 'train', 'valid', 'test', each a list of pieces, each piece a "
            "list of time steps, each step a tuple of MIDI pitch integers."
        )

    if not isinstance(obj, dict):
        fail(f"the top level is a {type(obj).__name__}")
    missing = [s for s in SPLITS if s not in obj]
    if missing:
        fail(f"keys {missing} are missing (found {sorted(map(str, obj))})")
    splits = {}
    for split in SPLITS:
        pieces = obj[split]
        if not isinstance(pieces, list):
            fail(f"{split!r} is a {type(pieces).__name__}")
        rolls = []
        for index, piece in enumerate(pieces):
            if not isinstance(piece, (list, tuple)) or not piece:
                fail(f"{split}[{index}] is not a non-empty list of time steps")
            for step in piece:
                if not isinstance(step, (tuple, list)) or not all(
                    isinstance(p, (int, np.integer)) and not isinstance(p, bool)
                    for p in step
                ):
                    fail(f"{split}[{index}] has a time step that is not integers")
            try:
                rolls.append(edge_music.pitches_to_roll(piece))
            except edge_music.MusicInputError as error:
                raise UsageError(f"{source}, {split}[{index}]: {error}") from None
        splits[split] = rolls
    return splits


def load_pitch_pickle(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """Loads a JSB-style pickle safely and returns {split: [roll, ...]}.

    Raises:
        UsageError: the file is not a pickle, names anything but the allowed
            numpy scalar helpers, or does not have the expected structure.
    """
    path = Path(path)
    try:
        obj = restricted_loads(path.read_bytes())
    except pickle.UnpicklingError as error:
        raise UsageError(f"Refused to load {path}: {error}") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError) as error:
        raise UsageError(
            f"{path} is not a readable pickle ({type(error).__name__}: {error})."
        ) from None
    return _validate_pitch_pickle(obj, str(path))


# --- the .mat benchmark files --------------------------------------------------


def load_mat(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """Loads a Boulanger-Lewandowski .mat file: {split: [(time, 88) uint8 roll]}."""
    import scipy.io

    path = Path(path)
    try:
        mat = scipy.io.loadmat(str(path))
    except (ValueError, TypeError, OSError, NotImplementedError) as error:
        raise UsageError(f"Could not read {path} as a .mat file: {error}") from None
    splits = {}
    for split, key in _MAT_KEYS.items():
        if key not in mat:
            raise UsageError(
                f"{path} lacks the cell array {key!r}. Expected traindata, validdata "
                f"and testdata. Received keys: {sorted(k for k in mat if k[0] != '_')}"
            )
        cells = np.asarray(mat[key]).reshape(-1)
        rolls = []
        for cell in cells:
            roll = np.asarray(cell)
            if roll.ndim != 2 or roll.shape[1] != edge_music.NUM_KEYS:
                raise UsageError(
                    f"{path}: a piece of {key} is not a (time, 88) piano roll. "
                    f"Received: shape={roll.shape}"
                )
            rolls.append((roll > 0).astype(np.uint8))
        splits[split] = rolls
    return splits


# --- music21's Bach chorales and a user's MIDI folder ------------------------


def _hash_split(name: str) -> str:
    bucket = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 10
    return "test" if bucket == 0 else "valid" if bucket == 1 else "train"


_VOICES = ("soprano", "alto", "tenor", "bass")


def music21_score_to_roll(score, step: float = 1.0) -> np.ndarray:
    """Samples the four voices of a music21 chorale at every `step` quarter notes.

    Only the parts named Soprano, Alto, Tenor and Bass are read when the score
    has them (some chorales add instrumental parts such as a horn), so each step
    holds at most four notes, as in the benchmark.
    """
    from rnnkit.apps.music.midi import notes_to_roll

    parts = list(score.parts)
    voices = [p for p in parts if (p.partName or "").strip().lower() in _VOICES]
    if len(voices) == len(_VOICES):
        parts = voices
    elif len(parts) != len(_VOICES):
        raise UsageError(
            "The score is not a four-part chorale. Expected 4 parts or parts named "
            f"Soprano, Alto, Tenor, Bass. Received: {[p.partName for p in parts]}"
        )
    notes = []
    for part in parts:
        for element in part.flatten().notes:
            start = float(element.offset)
            end = start + float(element.quarterLength)
            for pitch in element.pitches:
                notes.append((int(pitch.midi), start, end))
    return notes_to_roll(notes, step=step, source="music21 score")


def load_music21_bach(
    limit: int | None = None, step: float = 1.0
) -> dict[str, list[np.ndarray]]:
    """The Bach chorales shipped with music21, as {split: [roll, ...]}.

    Args:
        limit: read only the first `limit` chorale files (sorted by name), which
            keeps demos and tests fast; None reads all of them (a few minutes).
        step: sampling step in quarter notes.
    """
    try:
        from music21 import corpus
    except ImportError as error:
        raise DataNotFoundError(
            "The bach-music21 dataset needs the music21 package "
            "(pip install 'rnnkit[music]')."
        ) from error
    paths = sorted(corpus.getComposer("bach"), key=lambda p: Path(p).name)
    if limit is not None:
        paths = paths[:limit]
    splits: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for path in paths:
        try:
            roll = music21_score_to_roll(corpus.parse(str(path)), step=step)
        except UsageError as error:
            logger.warning("Skipping %s: %s", Path(path).name, error)
            continue
        splits[_hash_split(Path(path).name)].append(roll)
    return splits


def load_midi_folder(
    directory: str | os.PathLike, step: float = 1.0
) -> dict[str, list[np.ndarray]]:
    """Every .mid/.midi file under `directory`, as {split: [roll, ...]}.

    Raises:
        UsageError: the folder holds no MIDI file, or a file is unreadable or
            has pitches off the keyboard (the message names the file).
    """
    from rnnkit.apps.music.midi import read_midi

    directory = Path(directory)
    paths = sorted(
        p
        for p in directory.rglob("*")
        if p.suffix.lower() in (".mid", ".midi") and p.is_file()
    )
    if not paths:
        raise UsageError(
            f"No MIDI files found in {directory}. Expected .mid or .midi files."
        )
    splits: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for path in paths:
        splits[_hash_split(path.relative_to(directory).as_posix())].append(
            read_midi(path, step=step)
        )
    if not splits["train"]:
        # A folder of very few files may hash none into train; train on all.
        splits["train"] = [r for s in SPLITS for r in splits[s]]
    return splits


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    step: float = 1.0,
    limit: int | None = None,
) -> dict[str, list[np.ndarray]]:
    """Loads a dataset by name (see the module docstring) as {split: [roll, ...]}.

    Args:
        name: one of `DATASETS`, or the path of a folder of MIDI files.
        data_dir: the data folder (else RNNKIT_DATA, else ~/.cache/rnnkit).
        step: quantization step in beats for MIDI folders and music21.
        limit: music21 only: read the first `limit` chorales.
    """
    key = name.lower()
    if key == "jsb":
        return load_pitch_pickle(require_file(JSB_PICKLE, data_dir))
    if key in MAT_FILES:
        return load_mat(require_file(MAT_FILES[key], data_dir))
    if key == "bach-music21":
        return load_music21_bach(limit=limit, step=step)
    if Path(name).expanduser().is_dir():
        return load_midi_folder(Path(name).expanduser(), step=step)
    raise UsageError(
        f"Unknown music dataset {name!r}. Expected one of {list(DATASETS)} or a "
        "folder of MIDI files."
    )
