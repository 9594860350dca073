"""Speech Commands clips: listing, speaker-disjoint splits, waveforms and noise.

The data folder holds `speech/speech_commands_test_set_v0.02/<label>/*.wav`
(the 12-class task) and `speech/_background_noise_/*.wav`. Clips are split by
speaker so that no voice is in two splits; `_silence_` clips have no speaker
and are split by a hash of their file name. Both use a fixed seed, so the split
is the same on every machine.

A user's own folder of `<label>/*.wav` files works the same way
(`list_folder`); online users can read tensorflow-datasets' `speech_commands`
(`load_tfds`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnkit.data import require_file
from rnnkit.edge.audio import AudioError, fit_length, read_wav
from rnnkit.errors import DataNotFoundError, UsageError

logger = logging.getLogger(__name__)

CLIPS_DIR = "speech/speech_commands_test_set_v0.02"
NOISE_DIR = "speech/_background_noise_"
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
LABELS_12 = (*WORDS, "_silence_", "_unknown_")
# The TensorFlow simple-audio tutorial's "mini speech commands": eight words, no
# silence or unknown class, in the tutorial's (alphabetical) order.
LABELS_8 = ("down", "go", "left", "no", "right", "stop", "up", "yes")
LABEL_SETS = {"12": LABELS_12, "8": LABELS_8}
SPLIT_SEED = 20180409  # the dataset paper's date; any fixed value would do
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train, validation, test (held-out speakers)


@dataclasses.dataclass(frozen=True)
class Clip:
    """One labelled recording."""

    path: Path
    label: str
    speaker: str | None


def labels_for(label_set: str | Sequence[str]) -> tuple[str, ...]:
    """Returns the labels of '12' or '8', or the given sequence as a tuple."""
    if isinstance(label_set, str):
        if label_set not in LABEL_SETS:
            raise UsageError(
                f"Unknown label set. Expected one of {sorted(LABEL_SETS)}. "
                f"Received: {label_set!r}"
            )
        return LABEL_SETS[label_set]
    return tuple(label_set)


def speaker_of(file_name: str, label: str) -> str | None:
    """The speaker id in a Speech Commands file name, or None if it has none.

    `<speaker>_nohash_<n>.wav` for the words, `<word>_<speaker>_nohash_<n>.wav.wav`
    in `_unknown_`, `<n>.wav` (no speaker) in `_silence_`.
    """
    stem = file_name.split(".wav")[0]
    if "_nohash_" not in stem:
        return None
    before = stem.split("_nohash_")[0]
    if label == "_unknown_" and "_" in before:
        return before.rsplit("_", 1)[1]
    return before


def _fraction(key: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(clip: Clip, seed: int = SPLIT_SEED, fractions=SPLIT_FRACTIONS) -> str:
    """'train', 'validation' or 'test' for a clip, by speaker (or file if none)."""
    key = clip.speaker if clip.speaker is not None else f"file:{clip.path.name}"
    value = _fraction(key, seed)
    if value < fractions[0]:
        return "train"
    if value < fractions[0] + fractions[1]:
        return "validation"
    return "test"


def list_folder(folder: str | os.PathLike) -> list[Clip]:
    """Lists `<label>/*.wav` clips of a folder, labels from sub-folder names."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataNotFoundError(
            f"Clip folder not found. Expected a folder of <label>/*.wav. "
            f"Received: {folder}"
        )
    clips = []
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(label_dir.glob("*.wav")):
            clips.append(
                Clip(path, label_dir.name, speaker_of(path.name, label_dir.name))
            )
    if not clips:
        raise DataNotFoundError(
            f"No WAV clips found. Expected <label>/*.wav files. Received: {folder}"
        )
    return clips


def clips_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The Speech Commands clip folder inside the data folder."""
    return require_file(CLIPS_DIR, data_dir)


def list_clips(
    split: str | None = None,
    labels: str | Sequence[str] = "12",
    data_dir: str | os.PathLike | None = None,
    folder: str | os.PathLike | None = None,
    max_per_class: int | None = None,
) -> list[Clip]:
    """Lists the clips of one split whose labels are in `labels`.

    Args:
        split: 'train', 'validation', 'test' or None for all.
        labels: '12', '8' or a sequence of label names.
        data_dir: the data folder (else `RNNKIT_DATA`).
        folder: a `<label>/*.wav` folder to use instead of Speech Commands.
        max_per_class: keep at most this many clips per label (the first ones
            in file-name order, for quick runs).
    """
    if split not in (None, "train", "validation", "test"):
        raise UsageError(
            "Unknown split. Expected 'train', 'validation', 'test' or None. "
            f"Received: {split!r}"
        )
    wanted = set(labels_for(labels))
    clips = list_folder(folder if folder is not None else clips_dir(data_dir))
    chosen = [
        c
        for c in clips
        if c.label in wanted and (split is None or split_of(c) == split)
    ]
    if max_per_class is not None:
        counts: dict[str, int] = {}
        kept = []
        for clip in chosen:
            counts[clip.label] = counts.get(clip.label, 0) + 1
            if counts[clip.label] <= max_per_class:
                kept.append(clip)
        chosen = kept
    return chosen


def load_waveforms(clips: Sequence[Clip]) -> np.ndarray:
    """Reads clips as (n, 16000) float32, resampled and padded/trimmed to 1 s."""
    waveforms = np.zeros((len(clips), 16000), np.float32)
    for index, clip in enumerate(clips):
        try:
            waveforms[index] = fit_length(read_wav(clip.path))
        except AudioError as error:
            raise UsageError(str(error)) from error
    return waveforms


def encode_labels(clips: Sequence[Clip], labels: Sequence[str]) -> np.ndarray:
    """Class indices of clips; a label outside `labels` is an error."""
    index = {label: i for i, label in enumerate(labels)}
    missing = sorted({c.label for c in clips} - set(index))
    if missing:
        raise UsageError(
            f"Clips have labels the model does not know. Expected labels among "
            f"{list(labels)}. Received: {missing}"
        )
    return np.array([index[c.label] for c in clips], np.int32)


def load_background_noise(
    split: str = "train", data_dir: str | os.PathLike | None = None
) -> dict[str, np.ndarray]:
    """The six background-noise recordings, cut by time for each split.

    The first 80% of every recording is for training (augmentation and silence),
    the next 10% for validation and the last 10% for the test streams, so the
    noise a held-out stream contains was never heard in training.
    """
    folder = require_file(NOISE_DIR, data_dir)
    bounds = {"train": (0.0, 0.8), "validation": (0.8, 0.9), "test": (0.9, 1.0)}
    if split not in bounds:
        raise UsageError(
            f"Unknown split. Expected one of {sorted(bounds)}. Received: {split!r}"
        )
    low, high = bounds[split]
    noise = {}
    for path in sorted(folder.glob("*.wav")):
        samples = read_wav(path)
        noise[path.stem] = samples[int(low * samples.size) : int(high * samples.size)]
    if not noise:
        raise DataNotFoundError(f"No background-noise WAV files in {folder}")
    return noise


def make_stream(
    clips: Sequence[Clip],
    noise: np.ndarray,
    seed: int = 0,
    gap_s: tuple[float, float] = (1.0, 2.0),
    noise_gain: float = 0.1,
) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Concatenates clips with noise between them into one long recording.

    Args:
        clips: the clips to speak, in order.
        noise: a 1-D noise recording laid under the whole stream.
        seed: for the gap lengths and the noise offset.
        gap_s: range of the silence between two clips, in seconds.
        noise_gain: scale of the noise.

    Returns:
        (samples, truth) with truth a list of (label, start_s, end_s).
    """
    rng = np.random.default_rng(seed)
    waveforms = load_waveforms(clips)
    pieces, truth, position = [], [], 0
    for clip, waveform in zip(clips, waveforms, strict=True):
        gap = np.zeros(int(rng.uniform(*gap_s) * 16000), np.float32)
        pieces += [gap, waveform]
        position += gap.size
        truth.append((clip.label, position / 16000, (position + waveform.size) / 16000))
        position += waveform.size
    pieces.append(np.zeros(16000, np.float32))
    stream = np.concatenate(pieces)
    repeats = -(-stream.size // noise.size)
    offset = int(rng.integers(0, noise.size))
    bed = np.roll(np.tile(noise, repeats), -offset)[: stream.size]
    return np.clip(stream + noise_gain * bed, -1.0, 1.0).astype(np.float32), truth


def load_tfds(
    split: str = "train", labels: Sequence[str] = LABELS_12, download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Reads tensorflow-datasets' `speech_commands` (online users).

    Args:
        split: a tfds split ('train', 'validation', 'test').
        labels: label order of the returned indices; tfds labels are mapped
            by name.
        download: let tfds download the dataset (about 2.4 GB) if it is not in
            its cache; off by default, as loaders never download on their own.

    Returns:
        (waveforms (n, 16000) float32, label indices (n,) int32).
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise DataNotFoundError(
            "tensorflow-datasets is not installed. Expected `pip install "
            "tensorflow-datasets`. Received: ImportError"
        ) from error
    dataset, info = tfds.load(
        "speech_commands", split=split, with_info=True, download=download
    )
    names = info.features["label"].names
    index = {label: i for i, label in enumerate(labels)}
    waveforms, targets = [], []
    for example in tfds.as_numpy(dataset):
        name = names[int(example["label"])]
        if name not in index:
            continue
        audio = example["audio"].astype(np.float32) / 32768.0
        waveforms.append(fit_length(audio))
        targets.append(index[name])
    return np.stack(waveforms), np.array(targets, np.int32)
