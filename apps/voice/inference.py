"""Loading a trained voice model (.keras or .tflite) behind one interface.

A `.tflite` model runs on `rnnkit.edge` alone: this module imports neither
TensorFlow nor Keras at module level, and the `.tflite` path never imports
them at all (a test checks `sys.modules`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from rnnkit.edge.audio import (
    AudioError,
    FeatureConfig,
    LogMelFeatures,
    WindowedStreamer,
    fit_length,
    read_wav,
    window_starts,
)
from rnnkit.errors import ModelFileError, UsageError

logger = logging.getLogger(__name__)
CONFIG_NAME = "voice.json"


def _read_config(model_path: Path, embedded: dict | None) -> dict:
    """The model's voice settings: embedded metadata, else `voice.json` beside it."""
    if embedded and "labels" in embedded and "features" in embedded:
        return dict(embedded)
    sidecar = model_path.with_name(CONFIG_NAME)
    if not sidecar.is_file():
        raise ModelFileError(
            f"The voice model has no settings. Expected {CONFIG_NAME} beside it (as "
            f"`rnnkit train voice` writes) or metadata inside. Received: {model_path}"
        )
    return json.loads(sidecar.read_text())


def read_clip(path: str | os.PathLike, config: FeatureConfig) -> np.ndarray:
    """A WAV file as one clip: mono, resampled, padded/trimmed to one second."""
    try:
        return fit_length(read_wav(path, config.sample_rate), config.clip_samples)
    except AudioError as error:
        raise UsageError(str(error)) from error


def read_recording(path: str | os.PathLike, config: FeatureConfig) -> np.ndarray:
    """A WAV file of any length: mono, resampled, at least one clip long."""
    try:
        samples = read_wav(path, config.sample_rate)
    except AudioError as error:
        raise UsageError(str(error)) from error
    if samples.size < config.clip_samples:
        samples = np.pad(samples, (0, config.clip_samples - samples.size))
    return samples


class VoiceClassifier:
    """A trained keyword classifier, Keras or LiteRT.

    Attributes:
        labels: class names in output order.
        features: the `FeatureConfig` the model was trained with.
        threshold: the stored rejection / detection threshold.
        window_frames, hop_frames: the streaming window and its hop, in frames.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelFileError(f"Model file not found. Received: {self.path}")
        suffix = self.path.suffix.lower()
        if suffix == ".keras":
            import keras

            import rnnkit.layers  # noqa: F401 - registers RecurrentStack for loading

            self._keras = keras.saving.load_model(self.path)
            self._edge = None
            embedded = None
        elif suffix == ".tflite":
            from rnnkit.edge import EdgeModel

            self._keras = None
            self._edge = EdgeModel(self.path)
            embedded = self._edge.metadata
        else:
            raise UsageError(
                "Unknown model file type. Expected a .keras or .tflite file. "
                f"Received: {self.path}"
            )
        self.config = _read_config(self.path, embedded)
        self.labels = list(self.config["labels"])
        self.features = FeatureConfig.from_dict(self.config["features"])
        self.threshold = float(self.config.get("threshold", 0.6))
        self.window_frames = int(
            self.config.get("window_frames", self.features.frames_per_clip)
        )
        self.hop_frames = int(self.config.get("hop_frames", 12))
        self.front_end = LogMelFeatures(self.features)
        self._per_frame = None

    @property
    def is_streaming(self) -> bool:
        """True for a one-step model with carried state (run frame by frame)."""
        return self._edge is not None and self._edge.streaming

    def _stepper(self):
        return _EdgeStepper(self._edge.stream())

    def predict_features(
        self, features: np.ndarray, batch_size: int = 256
    ) -> np.ndarray:
        """Class probabilities of clips, (n, frames, bins) -> (n, classes)."""
        features = np.asarray(features, np.float32)
        if features.ndim != 3 or features.shape[-1] != self.features.num_mel_bins:
            raise UsageError(
                f"Features must be (clips, frames, {self.features.num_mel_bins}). "
                f"Received: shape {features.shape}"
            )
        if self._keras is not None:
            return np.asarray(
                self._keras.predict(features, verbose=0, batch_size=batch_size)
            )
        if self.is_streaming:
            outputs = []
            stepper = self._stepper()
            for clip in features:
                stepper.reset()
                for frame in clip:
                    output = stepper.step(frame)
                outputs.append(np.asarray(output).ravel())
            return np.stack(outputs)
        return np.asarray(self._edge.run(features)[0])

    def frame_posteriors(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities after every frame of one clip, (frames, classes).

        The state starts at the first frame; the last row is the clip's
        prediction.
        """
        features = np.asarray(features, np.float32)
        if self._keras is not None:
            if self._per_frame is None:
                from rnnkit.apps.voice.model import per_frame_model

                self._per_frame = per_frame_model(self._keras, self.config)
            return np.asarray(self._per_frame.predict(features[None], verbose=0)[0])
        if not self.is_streaming:
            return np.stack(
                [
                    self.predict_features(features[None, : t + 1])[0]
                    for t in range(len(features))
                ]
            )
        stepper = self._stepper()
        return np.stack([np.asarray(stepper.step(f)).ravel() for f in features])

    def predict_waveforms(self, waveforms: np.ndarray) -> np.ndarray:
        """Class probabilities of (n, samples) one-second clips."""
        features = np.stack([self.front_end.compute(w) for w in waveforms])
        return self.predict_features(features)

    def stream_posteriors(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posteriors of every window of a recording, and each window's end time.

        A streaming .tflite model runs frame by frame through `WindowedStreamer`
        (what a device does); a .keras model classifies the same windows in one
        batch, which gives the same numbers.

        Returns:
            (times (windows,) in seconds, posteriors (windows, classes)).
        """
        features = LogMelFeatures(self.features).compute(samples)
        c = self.features
        if self.is_streaming:
            streamer = WindowedStreamer(
                self._stepper, self.window_frames, self.hop_frames
            )
            ends, outputs = [], []
            for frame in features:
                for end, output in streamer.step(frame):
                    ends.append(end)
                    outputs.append(output)
            ends = np.array(ends, np.int64)
            posteriors = np.array(outputs).reshape(len(ends), len(self.labels))
        else:
            starts = window_starts(len(features), self.window_frames, self.hop_frames)
            windows = np.stack([features[s : s + self.window_frames] for s in starts])
            posteriors = self.predict_features(windows)
            ends = starts + self.window_frames
        times = ((ends - 1) * c.frame_step + c.frame_length) / c.sample_rate
        return times.astype(np.float64), posteriors


class _EdgeStepper:
    """Adapts an `EdgeModel` stream to the `WindowedStreamer` stepper protocol."""

    def __init__(self, stream):
        self._stream = stream

    def step(self, frame: np.ndarray) -> np.ndarray:
        return np.asarray(self._stream.step(np.asarray(frame, np.float32)[None, :]))[0]

    def reset(self) -> None:
        self._stream.reset()
