"""Audio on the device: WAV reading, log-mel features and keyword detection.

This is the device half of the voice application. It uses the standard library
and numpy only, so it runs wherever the edge runtime runs. Training computes the
same log-mel features with `tf.signal`; a parity test keeps the two equal (see
`docs/voice.md` for the tolerance).

The pieces, in the order audio flows through them:

* `read_wav` reads 8/16/24/32-bit PCM and 32/64-bit float WAV files, mixes
  stereo down and resamples to 16 kHz; `fit_length` pads or trims to one second.
* `LogMelFeatures` turns a waveform into log-mel frames (30 ms window, 20 ms
  hop, 40 bands), all at once (`compute`) or as samples arrive (`push`).
* `WindowedStreamer` runs a one-step recurrent classifier over a stream, as
  several staggered copies whose state is reset every second, so every copy
  sees exactly the one-second window the model was trained on.
* `Detector` smooths the window posteriors and reports a command with its time
  stamp when its smoothed score crosses a threshold.

Example:
    >>> import numpy as np
    >>> from rnnkit.edge.audio import LogMelFeatures
    >>> LogMelFeatures().compute(np.zeros(16000, np.float32)).shape
    (49, 40)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import struct
import wave
from collections.abc import Callable, Sequence

import numpy as np

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE
# Labels that are never reported as detections: they exist to absorb the rest.
NON_COMMANDS = ("_silence_", "_unknown_")


class AudioError(ValueError):
    """A file is not audio rnnkit can read, or audio has an unusable shape.

    The edge runtime may not import `rnnkit.errors`; callers that want the suite's
    error classes (the CLI) translate this one.
    """


# --------------------------------------------------------------------------- WAV


def _pcm_to_float(raw: bytes, sample_width: int) -> np.ndarray:
    """Decodes little-endian PCM bytes to float32 in [-1, 1)."""
    if sample_width == 1:
        # 8-bit WAV is unsigned with 128 as zero.
        return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    if sample_width == 2:
        return np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    if sample_width == 3:
        bytes3 = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        values = bytes3[:, 0] | (bytes3[:, 1] << 8) | (bytes3[:, 2] << 16)
        values = np.where(values >= 1 << 23, values - (1 << 24), values)
        return values.astype(np.float32) / float(1 << 23)
    if sample_width == 4:
        return (np.frombuffer(raw, "<i4").astype(np.float64) / 2147483648.0).astype(
            np.float32
        )
    raise AudioError(
        "Unsupported PCM sample width. Expected 1, 2, 3 or 4 bytes. "
        f"Received: sample_width={sample_width}"
    )


def _read_riff_float(path: str) -> tuple[np.ndarray, int]:
    """Reads an IEEE-float WAV (format 3), which the `wave` module refuses."""
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"Not a RIFF/WAVE file. Received: {path}")
    offset, fmt, payload = 12, None, None
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        body = data[offset + 8 : offset + 8 + size]
        if chunk_id == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
            fmt_body = body
        elif chunk_id == b"data":
            payload = body
        offset += 8 + size + (size & 1)
    if fmt is None or payload is None:
        raise AudioError(f"WAV file without fmt or data chunk. Received: {path}")
    format_tag, channels, rate, _, _, bits = fmt
    if format_tag == 0xFFFE and len(fmt_body) >= 26:
        # WAVE_FORMAT_EXTENSIBLE: the real format tag opens the sub-format GUID.
        (format_tag,) = struct.unpack("<H", fmt_body[24:26])
    if format_tag != 3 or bits not in (32, 64):
        raise AudioError(
            "Unsupported WAV encoding. Expected PCM (8/16/24/32-bit) or IEEE float "
            f"(32/64-bit). Received: format tag {format_tag}, {bits} bits, in {path}"
        )
    dtype = "<f4" if bits == 32 else "<f8"
    usable = len(payload) - len(payload) % (channels * bits // 8)
    samples = np.frombuffer(payload[:usable], dtype).astype(np.float32)
    return samples.reshape(-1, channels), rate


def read_wav(
    path: str | os.PathLike, sample_rate: int | None = SAMPLE_RATE
) -> np.ndarray:
    """Reads a WAV file as mono float32 in [-1, 1], resampled to `sample_rate`.

    Args:
        path: a RIFF/WAVE file: PCM of 8, 16, 24 or 32 bits, or IEEE float of 32
            or 64 bits, any number of channels, any sample rate.
        sample_rate: the rate to return, or None to keep the file's own rate.

    Returns:
        A 1-D float32 array. Channels are averaged; NaN and infinite float
        samples become 0 and float samples are clipped to [-1, 1].

    Raises:
        AudioError: the file is missing, not a WAV file, or of an encoding that
            is not supported.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioError(f"Audio file not found. Received: {path}")
    try:
        with wave.open(path, "rb") as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            raw = reader.readframes(reader.getnframes())
        usable = len(raw) - len(raw) % (channels * width)
        samples = _pcm_to_float(raw[:usable], width).reshape(-1, channels)
    except wave.Error as error:
        if "unknown format: 3" in str(error) or "unknown format: 65534" in str(error):
            samples, rate = _read_riff_float(path)
        else:
            raise AudioError(
                "Not a readable WAV file. Expected a RIFF/WAVE file of PCM or "
                f"float samples. Received: {path} ({error})"
            ) from error
    except (EOFError, struct.error) as error:
        raise AudioError(
            f"Truncated or corrupt WAV file. Received: {path} ({error})"
        ) from error
    if rate <= 0:
        raise AudioError(f"WAV file with a sample rate of {rate}. Received: {path}")
    mono = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples
    mono = np.clip(
        np.nan_to_num(mono.reshape(-1), nan=0.0, posinf=0.0, neginf=0.0), -1, 1
    )
    if sample_rate is not None and rate != sample_rate:
        mono = resample(mono, rate, sample_rate)
    return mono.astype(np.float32)


def write_wav(
    path: str | os.PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE
) -> None:
    """Writes mono float samples in [-1, 1] as a 16-bit PCM WAV, atomically."""
    path = os.fspath(path)
    clipped = np.clip(np.asarray(samples, np.float32), -1.0, 32767 / 32768)
    pcm = np.round(clipped * 32768.0).astype("<i2")
    temporary = path + ".tmp"
    with wave.open(temporary, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(pcm.tobytes())
    os.replace(temporary, path)


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resamples a 1-D signal by band-limited (FFT) interpolation.

    The spectrum is truncated or zero-padded, which is an ideal low-pass at the
    lower Nyquist frequency. It treats the signal as periodic, so the first and
    last few milliseconds may ring slightly; for speech clips that is harmless.
    """
    samples = np.asarray(samples, np.float32)
    if source_rate == target_rate or samples.size == 0:
        return samples
    target_length = max(1, int(round(samples.size * target_rate / source_rate)))
    spectrum = np.fft.rfft(samples.astype(np.float64))
    bins = target_length // 2 + 1
    if bins <= spectrum.size:
        spectrum = spectrum[:bins]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(bins - spectrum.size, complex)])
    out = np.fft.irfft(spectrum, n=target_length) * (target_length / samples.size)
    return out.astype(np.float32)


def fit_length(
    samples: np.ndarray, length: int = CLIP_SAMPLES, *, center: bool = True
) -> np.ndarray:
    """Pads with zeros or trims a waveform to exactly `length` samples.

    Longer clips keep the loudest `length`-sample stretch (by energy), which is
    where a spoken command is; shorter ones are zero-padded, centred by default.
    """
    samples = np.asarray(samples, np.float32).reshape(-1)
    if samples.size == length:
        return samples
    if samples.size < length:
        before = (length - samples.size) // 2 if center else 0
        return np.pad(samples, (before, length - samples.size - before))
    energy = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    window = energy[length:] - energy[:-length]
    start = int(np.argmax(window))
    return samples[start : start + length]


def clip_stats(samples: np.ndarray) -> dict:
    """Describes a clip's level: peak, RMS in dBFS, clipped and silent flags."""
    samples = np.asarray(samples, np.float32)
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    rms = (
        float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0
    )
    return {
        "peak": peak,
        "rms_dbfs": 20.0 * np.log10(max(rms, 1e-10)),
        "clipped": bool(samples.size and np.mean(np.abs(samples) >= 0.999) > 0.001),
        "silent": peak < 1e-4,
    }


# ---------------------------------------------------------------------- features


def hertz_to_mel(frequency):
    """HTK mel scale, as `tf.signal` uses it."""
    return 1127.0 * np.log1p(np.asarray(frequency, np.float64) / 700.0)


def mel_weight_matrix(
    num_mel_bins: int,
    num_spectrogram_bins: int,
    sample_rate: int,
    lower_edge_hertz: float,
    upper_edge_hertz: float,
) -> np.ndarray:
    """Triangular mel filters, (num_spectrogram_bins, num_mel_bins), float32.

    The same construction as `tf.signal.linear_to_mel_weight_matrix`: triangles
    spaced evenly in HTK mel between the edges, the DC bin always zero.
    """
    nyquist = sample_rate / 2.0
    linear = np.linspace(0.0, nyquist, num_spectrogram_bins)[1:]
    bins_mel = hertz_to_mel(linear)[:, None]
    edges = np.linspace(
        hertz_to_mel(lower_edge_hertz), hertz_to_mel(upper_edge_hertz), num_mel_bins + 2
    )
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    lower_slopes = (bins_mel - lower) / (center - lower)
    upper_slopes = (upper - bins_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(lower_slopes, upper_slopes))
    return np.pad(weights, [[1, 0], [0, 0]]).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Log-mel front end parameters, shared by training and the device.

    Attributes:
        sample_rate: input rate in Hz.
        frame_length: analysis window in samples (480 = 30 ms).
        frame_step: hop in samples (320 = 20 ms); 49 frames per second of audio.
        fft_length: FFT size (the window is zero-padded to it).
        num_mel_bins: mel bands.
        lower_edge_hertz, upper_edge_hertz: the mel filter bank's range.
        log_offset: added before the log so silence stays finite.
        clip_samples: samples in one clip (one second).
    """

    sample_rate: int = SAMPLE_RATE
    frame_length: int = 480
    frame_step: int = 320
    fft_length: int = 512
    num_mel_bins: int = 40
    lower_edge_hertz: float = 20.0
    upper_edge_hertz: float = 7600.0
    log_offset: float = 1e-6
    clip_samples: int = CLIP_SAMPLES

    @property
    def frames_per_clip(self) -> int:
        return 1 + (self.clip_samples - self.frame_length) // self.frame_step

    @property
    def frame_seconds(self) -> float:
        return self.frame_step / self.sample_rate

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> FeatureConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (values or {}).items() if k in fields})


class LogMelFeatures:
    """Log-mel magnitude features in numpy, whole signals or streamed.

    `compute` frames a whole signal (no padding: a frame starts every
    `frame_step` samples while a full window fits). `push` does the same on a
    stream: it keeps the samples not yet framed and returns the frames that the
    new samples complete, so pushing a signal in any chunk sizes gives exactly
    the frames `compute` gives.

    Args:
        config: a `FeatureConfig` (defaults: 30 ms / 20 ms / 40 bands).
    """

    def __init__(self, config: FeatureConfig | None = None):
        self.config = config or FeatureConfig()
        c = self.config
        self._window = (
            0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(c.frame_length) / c.frame_length)
        ).astype(np.float32)  # periodic Hann, as tf.signal.hann_window(periodic=True)
        self._mel = mel_weight_matrix(
            c.num_mel_bins,
            c.fft_length // 2 + 1,
            c.sample_rate,
            c.lower_edge_hertz,
            c.upper_edge_hertz,
        )
        self._pending = np.zeros(0, np.float32)

    def compute(self, samples: np.ndarray) -> np.ndarray:
        """Returns (frames, num_mel_bins) float32 log-mel features of `samples`."""
        c = self.config
        samples = np.asarray(samples, np.float32).reshape(-1)
        count = (
            0
            if samples.size < c.frame_length
            else 1 + (samples.size - c.frame_length) // c.frame_step
        )
        if count == 0:
            return np.zeros((0, c.num_mel_bins), np.float32)
        index = (
            np.arange(c.frame_length)[None, :]
            + c.frame_step * np.arange(count)[:, None]
        )
        frames = samples[index] * self._window  # (frames, frame_length)
        magnitude = np.abs(np.fft.rfft(frames, n=c.fft_length, axis=-1)).astype(
            np.float32
        )
        return np.log(magnitude @ self._mel + c.log_offset).astype(np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Feeds more samples of a stream; returns the frames they complete."""
        c = self.config
        buffer = np.concatenate(
            [self._pending, np.asarray(samples, np.float32).ravel()]
        )
        features = self.compute(buffer)
        consumed = features.shape[0] * c.frame_step
        self._pending = buffer[consumed:]
        return features

    def reset(self) -> None:
        """Forgets buffered samples (start of a new stream)."""
        self._pending = np.zeros(0, np.float32)


# --------------------------------------------------------------------- streaming


@dataclasses.dataclass(frozen=True)
class Detection:
    """One reported command: its label, the time it fired, and its score."""

    label: str
    time: float
    score: float

    def to_dict(self) -> dict:
        return {"label": self.label, "time": round(self.time, 3), "score": self.score}


class WindowedStreamer:
    """Streams a one-step classifier over frames as staggered one-second windows.

    A recurrent classifier trained on one-second clips has only ever seen a
    state that started at the start of a clip. Carrying one state through a long
    recording drifts away from that, so this runs `window // hop` copies of the
    one-step model, started `hop` frames apart; each copy is reset after
    `window` frames and its output then is the posterior for the window that
    just ended. The cost is `window // hop` model steps per feature frame, and
    the outputs equal running the clip model on every window.

    Args:
        new_stream: returns a fresh stepper, an object with `step(frame)` (frame
            of shape (features,)) returning the model's output vector after that
            frame, and `reset()`.
        window_frames: frames per window (the clip length the model expects).
        hop_frames: frames between window ends; must divide `window_frames`.
    """

    def __init__(
        self, new_stream: Callable[[], object], window_frames: int, hop_frames: int
    ):
        if hop_frames < 1 or window_frames < 1:
            raise AudioError(
                "window_frames and hop_frames must be positive. Received: "
                f"window_frames={window_frames}, hop_frames={hop_frames}"
            )
        self.window_frames = window_frames
        self.hop_frames = hop_frames
        copies = -(-window_frames // hop_frames)
        self._streams = [new_stream() for _ in range(copies)]
        self._offsets = [-index * hop_frames for index in range(copies)]
        self.frames_seen = 0

    def step(self, frame: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Feeds one feature frame; returns (end_frame, output) for windows ending."""
        finished = []
        for index, stream in enumerate(self._streams):
            position = self._offsets[index]
            self._offsets[index] += 1
            if position < 0:
                continue
            output = stream.step(frame)
            if position + 1 == self.window_frames:
                finished.append((self.frames_seen + 1, np.asarray(output).ravel()))
                stream.reset()
                # Restart this copy so its windows stay `window` frames long and
                # the copies stay `hop` apart.
                self._offsets[index] = self.window_frames - (
                    len(self._streams) * self.hop_frames
                )
        self.frames_seen += 1
        return finished

    def reset(self) -> None:
        for stream in self._streams:
            stream.reset()
        self._offsets = [-i * self.hop_frames for i in range(len(self._streams))]
        self.frames_seen = 0


def window_starts(num_frames: int, window_frames: int, hop_frames: int) -> np.ndarray:
    """Start frames of every full window, as `WindowedStreamer` visits them."""
    if num_frames < window_frames:
        return np.zeros(0, np.int64)
    return np.arange(0, num_frames - window_frames + 1, hop_frames)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - np.max(logits, axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / np.sum(exp, axis=axis, keepdims=True)


class Detector:
    """Smooths window posteriors and reports commands that cross a threshold.

    Args:
        labels: class names in model output order.
        threshold: smoothed probability a command needs to be reported.
        smoothing: how many consecutive window posteriors are averaged (causal).
        refractory_s: after a report, the same label is not reported again for
            this many seconds (one spoken word spans several windows).
        ignore: labels never reported (silence and unknown).
    """

    def __init__(
        self,
        labels: Sequence[str],
        threshold: float = 0.7,
        smoothing: int = 3,
        refractory_s: float = 1.0,
        ignore: Sequence[str] = NON_COMMANDS,
    ):
        if not 0.0 < threshold <= 1.0:
            raise AudioError(f"threshold must be in (0, 1]. Received: {threshold}")
        if smoothing < 1:
            raise AudioError(f"smoothing must be at least 1. Received: {smoothing}")
        self.labels = list(labels)
        self.threshold = float(threshold)
        self.smoothing = int(smoothing)
        self.refractory_s = float(refractory_s)
        self._reportable = np.array([label not in ignore for label in self.labels])
        self.reset()

    def reset(self) -> None:
        self._history: list[np.ndarray] = []
        self._last_time = {label: -np.inf for label in self.labels}

    def update(self, posterior: np.ndarray, time: float) -> Detection | None:
        """Adds the posterior of the window ending at `time` (seconds)."""
        posterior = np.asarray(posterior, np.float64).ravel()
        if posterior.size != len(self.labels):
            raise AudioError(
                f"Posterior has {posterior.size} classes. Expected {len(self.labels)} "
                f"(the labels). Received: shape {posterior.shape}"
            )
        self._history.append(posterior)
        del self._history[: -self.smoothing]
        smoothed = np.mean(self._history, axis=0)
        best = int(np.argmax(smoothed))
        score = float(smoothed[best])
        if not self._reportable[best] or score < self.threshold:
            return None
        label = self.labels[best]
        if time - self._last_time[label] < self.refractory_s:
            return None
        self._last_time[label] = time
        return Detection(label, float(time), score)


def detect(
    posteriors: np.ndarray,
    times: Sequence[float],
    labels: Sequence[str],
    **detector_kwargs,
) -> list[Detection]:
    """Runs a `Detector` over a sequence of window posteriors, (windows, classes)."""
    detector = Detector(labels, **detector_kwargs)
    found = []
    for posterior, time in zip(posteriors, times, strict=True):
        detection = detector.update(posterior, float(time))
        if detection is not None:
            found.append(detection)
    return found


def match_detections(
    detections: Sequence[Detection],
    truth: Sequence[tuple[str, float, float]],
    tolerance_s: float = 0.5,
) -> dict:
    """Scores detections against the commands in a stream.

    Args:
        detections: what the detector reported.
        truth: (label, start_s, end_s) of every command spoken in the stream.
        tolerance_s: a detection counts for a command if it fires between the
            command's start and its end plus this many seconds (a window ends
            after the word does).

    Returns:
        A dict with hits, misses, false_alarms (wrong label, duplicate, or no
        command nearby) and detection_rate.
    """
    used = [False] * len(truth)
    false_alarms = 0
    for detection in detections:
        for index, (label, start, end) in enumerate(truth):
            if (
                not used[index]
                and label == detection.label
                and start <= detection.time <= end + tolerance_s
            ):
                used[index] = True
                break
        else:
            false_alarms += 1
    hits = sum(used)
    return {
        "commands": len(truth),
        "hits": hits,
        "misses": len(truth) - hits,
        "false_alarms": false_alarms,
        "detection_rate": hits / len(truth) if truth else 0.0,
    }
