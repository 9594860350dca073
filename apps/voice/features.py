"""Log-mel features and augmentation in TensorFlow, for training.

The device computes the same features with numpy (`rnnkit.edge.audio`); the
parameters come from one `FeatureConfig`, and `tests/apps/test_voice_features.py`
checks that the two agree within the tolerance stated in `docs/voice.md`.

Augmentation works on waveforms before the features (time shift, background
noise mixing) and on the features after (SpecAugment-style time and frequency
masks), all inside a `tf.data` map so each epoch sees new variants.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from rnnkit.edge.audio import FeatureConfig


def log_mel(waveforms: tf.Tensor, config: FeatureConfig | None = None) -> tf.Tensor:
    """Log-mel magnitude features with `tf.signal`, (..., samples) -> (..., frames, bins)."""
    c = config or FeatureConfig()
    stft = tf.signal.stft(
        waveforms,
        frame_length=c.frame_length,
        frame_step=c.frame_step,
        fft_length=c.fft_length,
        window_fn=tf.signal.hann_window,
        pad_end=False,
    )
    magnitude = tf.abs(stft)
    weights = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=c.num_mel_bins,
        num_spectrogram_bins=c.fft_length // 2 + 1,
        sample_rate=c.sample_rate,
        lower_edge_hertz=c.lower_edge_hertz,
        upper_edge_hertz=c.upper_edge_hertz,
    )
    mel = tf.tensordot(magnitude, weights, 1)
    return tf.math.log(mel + c.log_offset)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """How training clips are varied.

    Attributes:
        shift_ms: maximum time shift either way (zero-filled, not wrapped).
        noise_probability: chance that a clip gets background noise mixed in.
        noise_max_gain: the noise segment is scaled by a gain drawn up to this.
        gain_range: the clip itself is scaled by a random gain in this range.
        time_masks, time_mask_frames: SpecAugment time masks and their max width.
        freq_masks, freq_mask_bins: frequency masks and their max width.
    """

    shift_ms: float = 100.0
    noise_probability: float = 0.8
    noise_max_gain: float = 0.3
    gain_range: tuple[float, float] = (0.5, 1.3)
    time_masks: int = 2
    time_mask_frames: int = 5
    freq_masks: int = 2
    freq_mask_bins: int = 5


def _mask(features: tf.Tensor, axis: int, count: int, width: int) -> tf.Tensor:
    """Sets `count` random bands of up to `width` along `axis` to the clip's mean."""
    size = tf.shape(features)[axis]
    fill = tf.reduce_mean(features)
    for _ in range(count):
        span = tf.random.uniform([], 0, width + 1, dtype=tf.int32)
        start = tf.random.uniform([], 0, tf.maximum(size - span, 1), dtype=tf.int32)
        positions = tf.range(size)
        inside = (positions >= start) & (positions < start + span)
        shape = [-1, 1] if axis == 0 else [1, -1]
        features = tf.where(tf.reshape(inside, shape), fill, features)
    return features


def make_augmenter(
    noise: np.ndarray,
    config: AugmentConfig,
    feature_config: FeatureConfig | None = None,
):
    """Returns a `tf.data` map function (waveform, label) -> (features, label).

    Args:
        noise: 1-D float32 array of concatenated background-noise recordings of
            the training split; random one-second segments are mixed in.
        config: the augmentation settings.
        feature_config: the feature settings.
    """
    fc = feature_config or FeatureConfig()
    noise = tf.constant(noise, tf.float32)
    noise_length = int(noise.shape[0])
    shift = int(config.shift_ms * fc.sample_rate / 1000)
    clip = fc.clip_samples

    def augment(waveform, label, is_silence):
        # Time shift: pad both sides, then take a random one-second window.
        padded = tf.pad(waveform, [[shift, shift]])
        offset = tf.random.uniform([], 0, 2 * shift + 1, dtype=tf.int32)
        waveform = padded[offset : offset + clip]
        waveform *= tf.random.uniform([], *config.gain_range)

        start = tf.random.uniform([], 0, noise_length - clip, dtype=tf.int32)
        segment = noise[start : start + clip]
        gain = tf.random.uniform([], 0.0, config.noise_max_gain)
        # Silence clips become fresh noise cuts at any level (including near 0).
        gain = tf.where(is_silence, tf.random.uniform([], 0.0, 1.0), gain)
        use_noise = tf.random.uniform([]) < config.noise_probability
        waveform += tf.where(use_noise | is_silence, gain, 0.0) * segment
        waveform = tf.clip_by_value(waveform, -1.0, 1.0)

        features = log_mel(waveform, fc)
        features = _mask(features, 0, config.time_masks, config.time_mask_frames)
        features = _mask(features, 1, config.freq_masks, config.freq_mask_bins)
        return features, label

    return augment
