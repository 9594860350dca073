"""Full-integer int8 for recurrent loops the converter cannot calibrate.

The TFLite converter's post-training calibration runs the float model in an
interpreter and records the range of every tensor; on a graph with a WHILE loop
it crashes (TF 2.21: a segfault inside the calibrator). Unrolling the loop
avoids the crash but stores every time step's ops and quantization parameters,
so the int8 file ends up larger than the float32 loop.

This module calibrates the loop itself instead:

1. The model is lowered with the loop unrolled over the representative data and
   run eagerly; `RangeRecorder` notes the min/max of every tensor the lowering
   marks (`lowering.Sites`: every step intermediate, every layer output), under
   names that are the same at every time step.
2. The model is lowered again with the WHILE loop kept, and `FakeQuantSites`
   puts a fake-quantization node with the recorded range on each marked tensor
   and a per-channel symmetric one on each weight.
3. The converter, told that the graph carries its own ranges (the way it treats
   a quantization-aware-trained model), emits int8 kernels inside the loop. The
   loop-carried state stays float32 between iterations (the converter does not
   quantize WHILE operands): one QUANTIZE and one DEQUANTIZE per step, no float
   arithmetic.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import tensorflow as tf
from rnnkit.exporters.lowering import Sites

logger = logging.getLogger(__name__)


class RangeRecorder(Sites):
    """Records the running min/max of each marked tensor (eager execution only)."""

    def __init__(self):
        self.ranges: dict[str, tuple[float, float]] = {}

    def act(self, name, tensor):
        values = np.asarray(tensor)
        if values.size:
            low, high = float(values.min()), float(values.max())
            if name in self.ranges:
                old_low, old_high = self.ranges[name]
                low, high = min(low, old_low), max(high, old_high)
            self.ranges[name] = (low, high)
        return tensor


class FakeQuantSites(Sites):
    """Inserts int8 fake-quantization nodes with recorded ranges."""

    def __init__(self, ranges: dict[str, tuple[float, float]]):
        self.ranges = ranges
        self.missing: set[str] = set()

    def act(self, name, tensor):
        if name not in self.ranges:
            # A tensor that calibration never saw (e.g. a branch not taken):
            # leave it float; the converter then reports it as a float op.
            self.missing.add(name)
            return tensor
        low, high = self.ranges[name]
        # int8 needs 0 inside the range (zero padding and zero states are exact)
        # and a non-empty range.
        low, high = min(low, 0.0), max(high, 0.0)
        if high - low < 1e-6:
            high = low + 1e-6
        return tf.quantization.fake_quant_with_min_max_vars(
            tensor, tf.constant(low), tf.constant(high), num_bits=8
        )

    def weight(self, name, array, axis=-1):
        array = np.asarray(array, np.float32)
        # Per-channel ranges would be more precise, but the converter turns the
        # hoisted (B, T, F) @ (F, G) product into FULLY_CONNECTED through a
        # TRANSPOSE of the weight and then rejects the moved channel axis; one
        # scale per weight converts everywhere.
        axis = None
        if axis is None:
            # One scale for the whole tensor (GATHER tables: the looked-up rows
            # must share the output's quantization).
            limit = max(float(np.abs(array).max()), 1e-8)
            return tf.quantization.fake_quant_with_min_max_vars(
                tf.constant(array),
                tf.constant(-limit),
                tf.constant(limit),
                num_bits=8,
                narrow_range=True,
            )
        axis = axis % array.ndim
        moved = np.moveaxis(array, axis, -1)
        limit = np.abs(moved).reshape(-1, moved.shape[-1]).max(axis=0)
        limit = np.maximum(limit, 1e-8).astype(np.float32)
        quantized = tf.quantization.fake_quant_with_min_max_vars_per_channel(
            tf.constant(moved), -limit, limit, num_bits=8, narrow_range=True
        )
        if axis == array.ndim - 1:
            return quantized
        return tf.experimental.numpy.moveaxis(quantized, -1, axis)


def calibrate(run_unrolled, samples: list[np.ndarray], batch_size: int = 64):
    """Ranges of every marked tensor over `samples`.

    Args:
        run_unrolled: fn(sites, list of input arrays) running the lowered model
            eagerly with the loop unrolled to the samples' length.
        samples: batch-first arrays, one per model input.
    """
    recorder = RangeRecorder()
    count = len(samples[0])
    for first in range(0, count, batch_size):
        rows = [tf.constant(a[first : first + batch_size]) for a in samples]
        run_unrolled(recorder, rows)
    return recorder.ranges


@contextlib.contextmanager
def carried_ranges():
    """Lets the converter accept a graph whose ranges are its fake-quant nodes.

    The converter decides that a model carries its own ranges by scanning its
    GraphDef for fake-quant ops, but on the SavedModel path (the one that keeps
    the fused-LSTM composite) it has no GraphDef at that point and so insists on
    a representative dataset, whose calibration would crash on the loop. This
    tells it what the graph does contain, for the duration of one conversion.
    """
    from tensorflow.lite.python import lite as tflite_lite

    mode = tflite_lite.QuantizationMode
    original = mode.is_quantization_aware_training
    mode.is_quantization_aware_training = lambda self: True
    try:
        yield
    finally:
        mode.is_quantization_aware_training = original
