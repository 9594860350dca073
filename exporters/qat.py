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
   (TFLite's fixed ranges on sigmoid and tanh outputs) and a symmetric one on
   each weight.
3. The converter, told that the graph carries its own ranges (the way it treats
   a quantization-aware-trained model), emits int8 kernels inside the loop. The
   converter leaves the loop-carried state float32 (it does not quantize WHILE
   operands: one QUANTIZE and one DEQUANTIZE per step); `compact.py` then
   carries it as int8, since it enters and leaves each step with one range.
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
        return self.bounded(name, tensor, low, high)

    def bounded(self, name, tensor, low, high):
        return tf.quantization.fake_quant_with_min_max_vars(
            tensor, tf.constant(low), tf.constant(high), num_bits=8
        )

    def weight(self, name, array):
        # One symmetric scale per weight. Per-channel scales would be finer, but
        # the converter turns the hoisted (B, T, F) @ (F, G) product into
        # FULLY_CONNECTED through a TRANSPOSE of the weight and then rejects the
        # moved channel axis; GATHER tables need one scale anyway.
        limit = max(float(np.abs(array).max()), 1e-8)
        return tf.quantization.fake_quant_with_min_max_vars(
            tf.constant(np.asarray(array, np.float32)),
            tf.constant(-limit),
            tf.constant(limit),
            num_bits=8,
            narrow_range=True,
        )


def calibrate(keras_model, samples: list[np.ndarray], batch_size: int = 64):
    """Ranges of every marked tensor of `keras_model` over `samples`.

    The model is lowered once with its loops unrolled to the samples' length
    (so that every step is a Python-visible tensor) and run eagerly batch by
    batch; a `RangeRecorder` keeps the running min/max per site name.

    Args:
        keras_model: the model to export.
        samples: batch-first arrays, one per model input, all of one length.
    """
    from rnnkit.exporters.lowering import LoweringOptions, lower_sequence

    recorder = RangeRecorder()
    options = LoweringOptions(
        time_steps=int(samples[0].shape[1]), fuse_lstm=False, sites=recorder
    )
    unrolled, _ = lower_sequence(keras_model, options)
    for first in range(0, len(samples[0]), batch_size):
        unrolled([tf.constant(a[first : first + batch_size]) for a in samples])
    return recorder.ranges


@contextlib.contextmanager
def carried_ranges():
    """Lets the converter accept a graph whose ranges are its fake-quant nodes.

    The converter decides that a model carries its own ranges by scanning its
    GraphDef for fake-quant ops, but on the SavedModel path (the one that keeps
    the fused-LSTM composite) it has no GraphDef at that point and so insists on
    a representative dataset, whose calibration would crash on the loop. This
    tells it what the graph does contain, for the duration of one conversion
    (a class attribute: conversions in other threads meanwhile see it too).
    """
    from tensorflow.lite.python import lite as tflite_lite

    mode = tflite_lite.QuantizationMode
    original = mode.is_quantization_aware_training
    mode.is_quantization_aware_training = lambda self: True
    try:
        yield
    finally:
        mode.is_quantization_aware_training = original
