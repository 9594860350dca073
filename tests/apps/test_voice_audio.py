"""The device half of the voice app: WAV reading, features, streaming, detection."""

import struct
import wave

import numpy as np
import pytest

from rnnkit.edge import audio

RATE = 16000


def _tone(seconds=1.0, rate=RATE, freq=440.0, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write_pcm(path, samples, rate, width, channels=1):
    data = np.repeat(samples[:, None], channels, axis=1).reshape(-1)
    if width == 1:
        raw = np.clip(np.round(data * 127 + 128), 0, 255).astype(np.uint8).tobytes()
    elif width == 2:
        raw = np.round(data * 32767).astype("<i2").tobytes()
    elif width == 3:
        values = np.round(data * (2**23 - 1)).astype(np.int32)
        raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in values)
    else:
        raw = np.round(data * (2**31 - 1)).astype("<i4").tobytes()
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(raw)


def _write_float(path, samples, rate, bits=32, channels=1):
    data = np.repeat(samples[:, None], channels, axis=1).reshape(-1)
    payload = data.astype("<f4" if bits == 32 else "<f8").tobytes()
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 3, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    body += b"data" + struct.pack("<I", len(payload)) + payload
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


@pytest.mark.parametrize(
    "kind, width, rate, channels",
    [
        ("pcm", 1, RATE, 1),
        ("pcm", 2, RATE, 1),
        ("pcm", 3, RATE, 1),
        ("pcm", 4, RATE, 1),
        ("pcm", 2, RATE, 2),
        ("pcm", 2, 8000, 1),
        ("pcm", 2, 44100, 2),
        ("float", 32, RATE, 1),
        ("float", 64, 22050, 2),
    ],
)
def test_read_wav_decodes_resamples_and_mixes_down(
    tmp_path, kind, width, rate, channels
):
    source = _tone(rate=rate)
    path = tmp_path / "tone.wav"
    if kind == "pcm":
        _write_pcm(path, source, rate, width, channels)
    else:
        _write_float(path, source, rate, width, channels)
    samples = audio.read_wav(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert samples.size == RATE
    expected = _tone()
    # 8-bit PCM has about 1% quantization noise; the FFT resampler rings a little
    # at the (periodic) ends, so compare the middle.
    tolerance = 0.02 if width == 1 else 0.005
    middle = slice(400, -400)
    assert np.max(np.abs(samples[middle] - expected[middle])) < tolerance


@pytest.mark.parametrize(
    "content",
    [b"", b"this is plain text, not audio at all", b"RIFF\x10\x00\x00\x00WAVEjunk"],
    ids=["empty", "text", "truncated-riff"],
)
def test_read_wav_refuses_non_audio(tmp_path, content):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(audio.AudioError, match="Received"):
        audio.read_wav(path)


def test_read_wav_missing_file(tmp_path):
    with pytest.raises(audio.AudioError, match="not found"):
        audio.read_wav(tmp_path / "absent.wav")


@pytest.mark.parametrize("length", [3000, 16000, 40000])
def test_fit_length_pads_or_keeps_the_loudest_second(length):
    samples = np.zeros(length, np.float32)
    burst = slice(length // 2, length // 2 + 1000)
    samples[burst] = 0.5
    fitted = audio.fit_length(samples)
    assert fitted.shape == (16000,)
    assert np.isclose(np.sum(fitted**2), np.sum(samples**2))


def test_clip_stats_flags_silent_and_clipped_audio():
    assert audio.clip_stats(np.zeros(16000))["silent"]
    loud = np.clip(_tone(amplitude=3.0), -1, 1)
    stats = audio.clip_stats(loud)
    assert stats["clipped"] and not stats["silent"]
    assert not audio.clip_stats(_tone(amplitude=0.3))["clipped"]


def test_write_wav_round_trip(tmp_path):
    source = _tone(amplitude=0.4)
    audio.write_wav(tmp_path / "out.wav", source)
    back = audio.read_wav(tmp_path / "out.wav")
    assert np.max(np.abs(back - source)) < 1e-4


def test_streamed_features_equal_whole_signal_features(data_dir):
    path = next((data_dir / "speech/speech_commands_test_set_v0.02/yes").glob("*.wav"))
    samples = audio.read_wav(path)
    front = audio.LogMelFeatures()
    whole = front.compute(samples)
    assert whole.shape == (49, 40)
    rng = np.random.default_rng(0)
    pieces, start = [], 0
    while start < samples.size:
        size = int(rng.integers(1, 700))
        pieces.append(front.push(samples[start : start + size]))
        start += size
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-5)


class _SumStepper:
    """A one-step 'model' with state: the running sum of the frames it saw."""

    def __init__(self):
        self.reset()

    def step(self, frame):
        self.total = self.total + frame
        return self.total.copy()

    def reset(self):
        self.total = np.zeros(3)


@pytest.mark.parametrize("window, hop", [(10, 5), (10, 3), (7, 7)])
def test_windowed_streamer_equals_classifying_every_window(window, hop):
    frames = np.random.default_rng(1).normal(size=(40, 3))
    streamer = audio.WindowedStreamer(_SumStepper, window, hop)
    outputs = [item for frame in frames for item in streamer.step(frame)]
    starts = audio.window_starts(len(frames), window, hop)
    assert [end for end, _ in outputs] == list(starts + window)
    for (end, output), start in zip(outputs, starts, strict=True):
        np.testing.assert_allclose(output, frames[start:end].sum(axis=0))


def test_detector_smooths_thresholds_and_reports_once():
    labels = ["yes", "no", "_silence_", "_unknown_"]
    quiet = [0.05, 0.05, 0.85, 0.05]
    word = [0.9, 0.04, 0.03, 0.03]
    unknown = [0.05, 0.05, 0.05, 0.85]
    posteriors = np.array([quiet, word, word, word, quiet, unknown, unknown, quiet])
    times = np.arange(len(posteriors)) * 0.25
    found = audio.detect(posteriors, times, labels, threshold=0.7, smoothing=2)
    # One word spans three windows: smoothing delays the report by one window and
    # the refractory period keeps it to one report; unknown is never reported.
    assert [(d.label, d.time) for d in found] == [("yes", 0.5)]
    scores = audio.match_detections(found, [("yes", 0.2, 0.6)])
    assert scores["hits"] == 1 and scores["false_alarms"] == 0


@pytest.mark.parametrize(
    "kwargs", [{"threshold": 0.0}, {"threshold": 1.5}, {"smoothing": 0}]
)
def test_detector_rejects_bad_settings(kwargs):
    with pytest.raises(audio.AudioError, match="Received"):
        audio.Detector(["yes"], **kwargs)
