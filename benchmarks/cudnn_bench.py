"""cuDNN vs the generic recurrent kernel: training-step time on a GPU.

For LSTM and GRU it times a forward+backward pass of the same layer twice:
with Keras' default `use_cudnn="auto"` (the cuDNN kernel on a GPU) and with
`use_cudnn=False` (the generic while-loop kernel), on identical weights and
data. Without a GPU there is nothing to compare: the script says so in its
section and writes no numbers.

Run:

    .venv/bin/python benchmarks/cudnn_bench.py [--batch 64 --length 200 --units 256]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_section  # noqa: E402


def _time_step(layer_class, use_cudnn, args, repeats) -> float:
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    layer = layer_class(args.units, return_sequences=True, use_cudnn=use_cudnn)
    x = tf.constant(
        np.random.default_rng(0).normal(size=(args.batch, args.length, args.features)),
        tf.float32,
    )
    layer(x)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(layer(x) ** 2)
        return tape.gradient(loss, layer.trainable_weights)

    for _ in range(3):  # warm-up: tracing and cuDNN autotuning
        step()
    started = time.perf_counter()
    for _ in range(repeats):
        gradients = step()
    _ = [g.numpy() for g in gradients]  # wait for the device
    return (time.perf_counter() - started) / repeats * 1000.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        body = (
            "No GPU was present on the machine that ran this script, so there is no "
            "cuDNN kernel to compare and no figures are reported. Run it on a "
            "machine with a CUDA GPU and a GPU build of TensorFlow to measure "
            "cuDNN against the generic kernel (`use_cudnn=False`)."
        )
        print(body)
        write_section("cudnn", "cuDNN vs generic recurrent kernel", body)
        return 0

    lines = [
        f"Forward + backward of one layer, batch {args.batch}, length {args.length}, "
        f"{args.features} input features, {args.units} units; mean of "
        f"{args.repeats} steps after 3 warm-up steps.",
        "",
        "| layer | cuDNN (ms/step) | generic (ms/step) | speed-up |",
        "| --- | --- | --- | --- |",
    ]
    for layer_class in (keras.layers.LSTM, keras.layers.GRU):
        fast = _time_step(layer_class, "auto", args, args.repeats)
        slow = _time_step(layer_class, False, args, args.repeats)
        lines.append(
            f"| {layer_class.__name__} | {fast:.2f} | {slow:.2f} | {slow / fast:.1f}x |"
        )
        print(lines[-1], flush=True)
    write_section("cudnn", "cuDNN vs generic recurrent kernel", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
