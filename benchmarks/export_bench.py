"""Export paths compared: Keras 3 `export(format="litert")`, tf_keras fused, rnnkit.

Seeded (untrained) models: LSTM, GRU, SimpleRNN, BiLSTM and a 2-layer LSTM, 64 units,
50 steps of 16 features, Dense(10) on the last output. Each candidate runs in its own
process (a crashing converter cannot take the others down); every row reports whether
LiteRT runs the file, its ops, size, max abs error vs Keras and the median latency of
one sequence on 1 thread, next to Keras `predict_on_batch` on the same input.

Run: .venv/bin/python benchmarks/export_bench.py   (about 6-7 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_section  # noqa: E402

MODELS = ("lstm", "gru", "simple_rnn", "bilstm", "lstm2")
UNITS, STEPS, FEATURES, CLASSES = 64, 50, 16, 10

_PREPARE_TEMPLATE = r"""
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, keras
folder, kind = sys.argv[1], sys.argv[2]
keras.utils.set_random_seed(0)
L = {"gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}.get(kind, keras.layers.LSTM)
inputs = keras.Input(({STEPS}, {FEATURES}))
if kind == "bilstm":
    x = keras.layers.Bidirectional(keras.layers.LSTM({UNITS}))(inputs)
elif kind == "lstm2":
    x = keras.layers.LSTM({UNITS}, return_sequences=True)(inputs)
    x = keras.layers.LSTM({UNITS})(x)
else:
    x = L({UNITS})(inputs)
model = keras.Model(inputs, keras.layers.Dense({CLASSES})(x))
rng = np.random.default_rng(0)
calibration = rng.normal(size=(32, {STEPS}, {FEATURES})).astype("float32")
test = rng.normal(size=(8, {STEPS}, {FEATURES})).astype("float32")
model.save(os.path.join(folder, kind + ".keras"))
np.savez(os.path.join(folder, kind + "_weights.npz"), *model.get_weights())
np.save(os.path.join(folder, kind + "_cal.npy"), calibration)
np.save(os.path.join(folder, kind + "_test.npy"), test)
np.save(os.path.join(folder, kind + "_want.npy"), model.predict(test, verbose=0))
one = test[:1]
model.predict_on_batch(one)
times = []
for _ in range(200):
    start = time.perf_counter(); model.predict_on_batch(one); times.append(time.perf_counter() - start)
print(json.dumps({"keras_ms": 1000 * float(np.median(times))}))
"""

_PREPARE = _PREPARE_TEMPLATE
for _name, _value in dict(
    STEPS=STEPS, FEATURES=FEATURES, UNITS=UNITS, CLASSES=CLASSES
).items():
    _PREPARE = _PREPARE.replace("{" + _name + "}", str(_value))

_CANDIDATE = r"""
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
folder, kind, path, quantize = sys.argv[1:5]
base = os.path.join(folder, kind)
calibration = np.load(base + "_cal.npy"); test = np.load(base + "_test.npy")
want = np.load(base + "_want.npy")
out = os.path.join(folder, f"{kind}_{path}_{quantize}.tflite")

def convert(converter):
    import tensorflow as tf
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([c[None]] for c in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    open(out, "wb").write(converter.convert())

if path == "keras3":
    import keras
    model = keras.saving.load_model(base + ".keras")
    if quantize == "float32":
        model.export(out, format="litert", verbose=False)
    else:
        import tensorflow as tf
        convert(tf.lite.TFLiteConverter.from_keras_model(model))
elif path == "tf_keras":
    # No Keras 3 in this process: the legacy fusion path needs tf_keras alone,
    # and the converter must see tf.keras as tf_keras (set before TF is imported).
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras, tensorflow as tf
    stored = np.load(base + "_weights.npz")
    weights = [stored[f"arr_{i}"] for i in range(len(stored.files))]
    # A static batch of 1 (the batch of every exported file here): with a batch
    # of None the converter does not fuse the layer's `lstm_*` function and
    # fails lowering its TensorList loop ("Lowering tensor list ops is failed").
    inputs = tf_keras.Input((calibration.shape[1], calibration.shape[2]), batch_size=1)
    if kind == "bilstm":
        x = tf_keras.layers.Bidirectional(tf_keras.layers.LSTM(64))(inputs)
    elif kind == "lstm2":
        x = tf_keras.layers.LSTM(64)(tf_keras.layers.LSTM(64, return_sequences=True)(inputs))
    else:
        layer = {"gru": tf_keras.layers.GRU, "simple_rnn": tf_keras.layers.SimpleRNN}.get(kind, tf_keras.layers.LSTM)
        x = layer(64)(inputs)
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(10)(x))
    model.set_weights(weights)
    convert(tf.lite.TFLiteConverter.from_keras_model(model))
else:
    from rnnkit.exporters import export_model
    export_model(base + ".keras", out, quantize=quantize, representative_data=calibration,
                 streaming=(path == "rnnkit_stream"), validation_data=test,
                 fuse_lstm=True if path == "rnnkit_fused" else None)

from ai_edge_litert.interpreter import Interpreter
from rnnkit.edge._opcodes import op_names
from rnnkit.edge.flatbuffer import read_flatbuffer
interpreter = Interpreter(model_path=out, num_threads=1)
# Every subgraph's ops (a WHILE body's too), from the file's operator codes.
info = read_flatbuffer(open(out, "rb").read())
ops = op_names(info.builtin_codes, info.custom_codes)
size = os.path.getsize(out)
inputs = interpreter.get_input_details(); outputs = interpreter.get_output_details()
interpreter.allocate_tensors()

def q(x, d):
    if d["dtype"] == np.int8:
        s, z = d["quantization"]; return np.clip(np.round(x / s + z), -128, 127).astype(np.int8)
    return x.astype(d["dtype"])

def dq(y, d):
    if d["dtype"] == np.int8:
        s, z = d["quantization"]; return (y.astype(np.float32) - z) * s
    return y

stream = path == "rnnkit_stream"
def run_one(x):
    interpreter.reset_all_variables()
    if not stream:
        interpreter.set_tensor(inputs[0]["index"], q(x[None], inputs[0])); interpreter.invoke()
        return dq(interpreter.get_tensor(outputs[0]["index"]), outputs[0])[0]
    names = interpreter._get_full_signature_list()["serving_default"]
    ins, outs = names["inputs"], names["outputs"]
    det = {d["index"]: d for d in inputs + outputs}
    states = {n: np.zeros(det[i]["shape"], np.float32) for n, i in ins.items() if n.startswith("state_")}
    for t in range(x.shape[0]):
        interpreter.set_tensor(ins["input_0"], q(x[t][None], det[ins["input_0"]]))
        for n, v in states.items():
            interpreter.set_tensor(ins[n], q(v, det[ins[n]]))
        interpreter.invoke()
        for n in states:
            k = "new_" + n
            states[n] = dq(interpreter.get_tensor(outs[k]), det[outs[k]])
    # The many-to-one model's last step output is the sequence's output.
    return dq(interpreter.get_tensor(outs["output_0"]), det[outs["output_0"]])[0]

got = np.stack([run_one(x) for x in test])
error = float(np.max(np.abs(got - want)))
times = []
for _ in range(200):
    start = time.perf_counter(); run_one(test[0]); times.append(time.perf_counter() - start)
print(json.dumps({"runs": True, "ops": ops, "size": size, "error": error,
                  "ms": 1000 * float(np.median(times))}))
"""


# The opening of the one-process children (choice table, form sweep): seeded
# models exported into the folder given as the first argument.
_CHILD_HEADER = r"""
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, keras
from ai_edge_litert.interpreter import Interpreter
from rnnkit.exporters import export_model
folder = sys.argv[1]
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
"""

# Interleaved rounds, so the load of a shared machine falls on every runner
# alike; `rows[i]["times"]` collects the times of `runners[i]`.
_INTERLEAVED_ROUNDS = r"""
for _ in range(200):
    for row, run in zip(rows, runners):
        start = time.perf_counter(); run(); row["times"].append(time.perf_counter() - start)
"""

_QUANT_CHOICE = (
    _CHILD_HEADER
    + rf"""
from rnnkit.exporters.micro import run_in_micro
cal = rng.normal(size=(32, {STEPS}, {FEATURES})).astype(np.float32)
test = rng.normal(size=(8, {STEPS}, {FEATURES})).astype(np.float32)
rows, runners = [], []
one = test[:1]
# lstm_any_length: the LSTM with a variable time axis, loop form only.
for kind in {MODELS!r} + ("lstm_any_length",):
    layer = {{"gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}}.get(kind, keras.layers.LSTM)
    any_length = kind == "lstm_any_length"
    inputs = keras.Input((None if any_length else {STEPS}, {FEATURES}))
    if kind == "bilstm":
        x = keras.layers.Bidirectional(keras.layers.LSTM({UNITS}))(inputs)
    elif kind == "lstm2":
        x = keras.layers.LSTM({UNITS})(keras.layers.LSTM({UNITS}, return_sequences=True)(inputs))
    else:
        x = layer({UNITS})(inputs)
    model = keras.Model(inputs, keras.layers.Dense({CLASSES})(x))
    if not any_length:
        for _ in range(20):
            model.predict_on_batch(one)
        rows.append(dict(model=kind, form="keras", quant="float32", size=0, error=0.0, times=[]))
        runners.append(lambda model=model: model.predict_on_batch(one))
    lstm = kind in ("lstm", "bilstm", "lstm2")
    # sequence_loop: the default (a WHILE loop); sequence_fused: LSTMs' fused op.
    forms = ("sequence_loop",) + (("streaming",) if kind != "bilstm" else ()) + (("sequence_fused",) if lstm else ())
    if any_length:
        forms = ("sequence_loop",)
    for form in forms:
        for quantize in ("float32", "dynamic", "int8"):
            out = os.path.join(folder, f"q_{{kind}}_{{form}}_{{quantize}}.tflite")
            r = export_model(model, out, quantize=quantize, representative_data=cal,
                             validation_data=test, streaming=form == "streaming",
                             fuse_lstm=form == "sequence_fused")
            it = Interpreter(model_path=out, num_threads=1)
            details = it.get_input_details()
            if form != "streaming" and -1 in list(details[0]["shape_signature"]):
                it.resize_tensor_input(details[0]["index"], [1, {STEPS}, {FEATURES}])
            it.allocate_tensors()
            for d in it.get_input_details():
                # Real inputs and non-zero states: hybrid (dynamic) kernels skip
                # all-zero vectors, so zeros would flatter them.
                if "input_0" in d["name"]:
                    value = test[0, 10][None] if form == "streaming" else test[0][None]
                else:
                    value = rng.uniform(-0.5, 0.5, size=d["shape"]).astype(np.float32)
                if d["dtype"] == np.int8:
                    scale, zero = d["quantization"]
                    value = np.clip(np.round(value / scale + zero), -128, 127)
                it.set_tensor(d["index"], value.astype(d["dtype"]))
            for _ in range(20):
                it.invoke()
            micro = None
            if quantize == "int8" and not any_length:
                # TFLite Micro in a child process: runs?, arena, int8 steps from LiteRT.
                checked = run_in_micro(open(out, "rb").read())
                micro = [checked.get("runs"), checked.get("arena_bytes"),
                         checked.get("max_diff_vs_litert")]
            rows.append(dict(model=kind, form=form, quant=quantize, size=r.size_bytes,
                             error=r.parity["max_abs_diff"], times=[], micro=micro))
            runners.append(it.invoke)
"""
    + _INTERLEAVED_ROUNDS
    + rf"""
for row in rows:
    steps = {STEPS} if row["form"] == "streaming" else 1
    row["ms"] = 1000 * steps * float(np.median(row.pop("times")))
print(json.dumps({{"runs": True, "rows": rows}}))
"""
)


_FORM_SWEEP = (
    _CHILD_HEADER
    + rf"""
test = rng.normal(size=(8, {STEPS}, {FEATURES})).astype(np.float32)
rows, runners = [], []
for units in (32, 64, 128, 256):
    inputs = keras.Input(({STEPS}, {FEATURES}))
    model = keras.Model(inputs, keras.layers.Dense({CLASSES})(keras.layers.LSTM(units)(inputs)))
    for fused in (False, True):
        out = os.path.join(folder, f"sweep_{{units}}_{{fused}}.tflite")
        r = export_model(model, out, validation_data=test, fuse_lstm=fused)
        it = Interpreter(model_path=out, num_threads=1)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], test[:1])
        for _ in range(20):
            it.invoke()
        warm = []
        for _ in range(200):
            start = time.perf_counter(); it.invoke(); warm.append(time.perf_counter() - start)
        rows.append(dict(units=units, fused=fused, size=r.size_bytes,
                         warm_ms=1000 * float(np.median(warm)), times=[]))
        runners.append(it.invoke)
"""
    + _INTERLEAVED_ROUNDS
    + r"""
for row in rows:
    row["interleaved_ms"] = 1000 * float(np.median(row.pop("times")))
print(json.dumps({"runs": True, "rows": rows}))
"""
)


def _form_sweep_table(sweep: dict) -> str:
    if not sweep.get("runs"):
        return f"LSTM form by size: not measured ({sweep.get('error_text')})."
    by = {(r["units"], r["fused"]): r for r in sweep["rows"]}
    lines = [
        "| units | loop KB | fused KB | loop ms (warm) | fused ms (warm) | loop vs "
        "fused (warm) | loop ms (interleaved) | fused ms (interleaved) | loop vs fused "
        "(interleaved) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for units in sorted({r["units"] for r in sweep["rows"]}):
        loop, fused = by[(units, False)], by[(units, True)]
        lines.append(
            f"| {units} | {loop['size'] / 1024:.1f} | {fused['size'] / 1024:.1f} | "
            f"{loop['warm_ms']:.3f} | {fused['warm_ms']:.3f} | "
            f"{loop['warm_ms'] / fused['warm_ms']:.2f}x | {loop['interleaved_ms']:.3f} | "
            f"{fused['interleaved_ms']:.3f} | "
            f"{loop['interleaved_ms'] / fused['interleaved_ms']:.2f}x |"
        )
    return (
        "### LSTM form by size (float32)\n\n"
        f"One LSTM layer, {STEPS} steps x {FEATURES} features, Dense({CLASSES}); "
        "rnnkit's default loop vs the fused op (`fuse_lstm=True`), exported in one "
        "process; `invoke()` medians on 1 thread: warm = 200 calls of one file back to "
        "back (a device running one model), interleaved = 200 rounds across all eight "
        "files (caches shared with the others).\n\n" + "\n".join(lines)
    )


def _child(code: str, *args: str, timeout: int = 900) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        if done.returncode < 0:
            name = signal.Signals(-done.returncode).name
            reason = f"process killed by signal {-done.returncode} ({name})"
        else:
            reason = tail
        return {"runs": False, "error_text": reason[:120]}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quantization-only",
        action="store_true",
        help="measure only the quantization-choice table; keep the existing path "
        "table of benchmarks/results/export.md",
    )
    args = parser.parse_args(argv)
    rows = None
    with tempfile.TemporaryDirectory(prefix="export_bench_") as folder:
        if not args.quantization_only:
            rows = []
            for kind in MODELS:
                keras_ms = _child(_PREPARE, folder, kind).get("keras_ms", float("nan"))
                # rnnkit's default is a WHILE loop for every layer; the fused
                # LSTM op is measured beside it.
                paths = [("rnnkit", ("float32", "int8"))]
                if kind in ("lstm", "bilstm", "lstm2"):
                    paths.append(("rnnkit_fused", ("float32", "int8")))
                if kind != "bilstm":  # a bidirectional model has no streaming form
                    paths.append(("rnnkit_stream", ("float32", "int8")))
                paths += [
                    ("keras3", ("float32", "int8")),
                    ("tf_keras", ("float32", "int8")),
                ]
                for path, quantizations in paths:
                    for quantize in quantizations:
                        result = _child(_CANDIDATE, folder, kind, path, quantize)
                        rows.append((kind, path, quantize, keras_ms, result))
                        print(kind, path, quantize, result, flush=True)
                        # Rewritten after every row, so an interrupted run keeps
                        # its rows.
                        _write(rows)
        choice = _child(_QUANT_CHOICE, folder)
        sweep = _child(_FORM_SWEEP, folder)
    _write(rows, choice, sweep)


def _micro_cell(micro) -> str:
    if micro is None:
        return ""
    runs, arena, steps = micro
    if not runs:
        return "does not run"
    return f"{arena / 1024:.1f}, {steps:g}"


def _quantization_table(choice: dict) -> str:
    if not choice.get("runs"):
        return f"Quantization choice: not measured ({choice.get('error_text')})."
    lines = [
        "| model | form | quant | size (KB) | size vs float32 | max abs err | "
        "invoke ms per sequence | vs float32 | TFLite Micro: arena KB, int8 steps "
        "from LiteRT |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = {
        (r["model"], r["form"]): r for r in choice["rows"] if r["quant"] == "float32"
    }
    for r in choice["rows"]:
        if r["form"] == "keras":
            continue
        b = base[(r["model"], r["form"])]
        lines.append(
            f"| {r['model']} | {r['form']} | {r['quant']} | {r['size'] / 1024:.1f} | "
            f"{r['size'] / b['size']:.2f}x | {r['error']:.2e} | {r['ms']:.3f} | "
            f"{r['ms'] / b['ms']:.2f}x | {_micro_cell(r.get('micro'))} |"
        )
    return (
        "### Quantization choice: speed vs size\n\n"
        f"The same five {UNITS}-unit models ({STEPS} steps, the time axis fixed "
        "as in the path table), and `lstm_any_length`: the LSTM with a variable "
        "time axis (`keras.Input((None, F))`), whose loop files carry the length "
        "as a loop variable; exported by rnnkit in one process; "
        "latency = median of 200 interpreter `invoke()` calls on 1 thread, "
        "interleaved across all files (streaming: one step x "
        f"{STEPS}), real inputs and non-zero states, no Python (de)quantization "
        "in the timing. Error vs Keras is the parity report's figure. TFLite Micro: each int8 file with static shapes run once in the `tflite-micro` interpreter (child process) on seeded inputs (`exporters.micro.run_in_micro`); arena size and the largest output difference from LiteRT in int8 steps.\n\n"
        + "\n".join(lines)
    )


def _previous_path_table() -> str:
    """The path table of the last full run (for --quantization-only)."""
    from common import RESULTS_DIR

    path = RESULTS_DIR / "export.md"
    if not path.exists():
        return "(no full run recorded yet)"
    text = path.read_text()
    if "Seeded models" not in text:
        return "(no full run recorded yet)"
    # The path table's own paragraph and rows; the targets table above it and
    # the choice table below belong to the run that wrote them.
    table = text[text.index("Seeded models") :].split("### ")[0].strip()
    earlier = re.search(r"Path table from the full run of (\S+)", text)
    date = earlier or re.search(r"^- date: (\S+)", text, re.MULTILINE)
    return (
        f"Path table from the full run of {date.group(1) if date else '?'} "
        "(this run re-measured only the quantization choice and the form sweep)."
        "\n\n" + table
    )


def _write(rows, choice: dict | None = None, sweep: dict | None = None) -> None:
    if rows is None:
        body = _previous_path_table()
    else:
        body = _path_table(rows)
    if choice is not None:
        if choice.get("runs"):
            body = _targets_table(choice) + "\n\n" + body
        body += "\n\n" + _quantization_table(choice)
    if sweep is not None:
        body += "\n\n" + _form_sweep_table(sweep)
    write_section("export", "Export paths: Keras 3 vs tf_keras vs rnnkit", body)


def _targets_table(choice: dict) -> str:
    """The issue's targets for rnnkit's default export, from the interleaved run.

    The default file of every model is the WHILE loop (`sequence_loop`), in
    float32 and int8 alike; LSTMs' fused op (`sequence_fused`) is shown beside
    it. Keras `predict_on_batch` ran in the same interleaved rounds.
    """
    found = {(r["model"], r["form"], r["quant"]): r for r in choice["rows"]}
    lines = [
        "| model | int8 size vs float32 | int8 time vs float32 | streaming int8 size "
        "vs float32 | float32 max abs err | float32 speed-up vs Keras | fused op "
        "float32: speed-up vs Keras, time vs loop |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in MODELS:
        int8 = found[(kind, "sequence_loop", "int8")]
        default = found[(kind, "sequence_loop", "float32")]
        keras_row = found[(kind, "keras", "float32")]
        stream = found.get((kind, "streaming", "int8"))
        fused = found.get((kind, "sequence_fused", "float32"))
        fused_cell = (
            f"{keras_row['ms'] / fused['ms']:.1f}x, {fused['ms'] / default['ms']:.2f}x"
            if fused
            else "(no fused op)"
        )
        stream_ratio = (
            f"{stream['size'] / found[(kind, 'streaming', 'float32')]['size']:.3f}x"
            if stream
            else "(no streaming form)"
        )
        lines.append(
            f"| {kind} | {int8['size'] / default['size']:.3f}x | "
            f"{int8['ms'] / default['ms']:.2f}x | {stream_ratio} | "
            f"{default['error']:.1e} | {keras_row['ms'] / default['ms']:.1f}x | "
            f"{fused_cell} |"
        )
    return (
        "### Targets, rnnkit's default export\n\n"
        "Issue targets: LSTM int8 <= 0.30x of float32; every int8 file smaller and not "
        "slower than float32; streaming int8 <= 0.40x; float32 error <= 1e-5; TFLite "
        "float32 >= 8x faster than Keras `predict_on_batch`. Figures from the interleaved "
        "run below (one process, 200 rounds); the default file is the WHILE loop "
        "(`sequence_loop`) in float32 and int8.\n\n" + "\n".join(lines)
    )


def _path_table(rows) -> str:
    lines = [
        "| model | path | quant | runs on LiteRT | size (KB) | max abs err | "
        "latency ms (1 thread) | Keras predict_on_batch ms | ops |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, path, quantize, keras_ms, r in rows:
        if r.get("runs"):
            lines.append(
                f"| {kind} | {path} | {quantize} | yes | {r['size'] / 1024:.1f} | "
                f"{r['error']:.2e} | {r['ms']:.3f} | {keras_ms:.2f} | "
                f"{', '.join(r['ops'])} |"
            )
        else:
            lines.append(
                f"| {kind} | {path} | {quantize} | no ({r.get('error_text', '')}) "
                f"| | | | {keras_ms:.2f} | |"
            )
    body = (
        f"Seeded models, {UNITS} units, {STEPS} steps x {FEATURES} features, Dense("
        f"{CLASSES}) on the last output; error vs Keras on 8 held-out sequences; latency "
        "= median of 200 single-sequence runs. `rnnkit_stream` is the one-step file "
        f"stepped {STEPS} times from Python (per-step call overhead included). "
        "`rnnkit` is the default export, a WHILE loop for every layer in float32 "
        "and int8; `rnnkit_fused` (`fuse_lstm=True`, `--lstm-fused`) lowers LSTMs "
        "to the fused UNIDIRECTIONAL_SEQUENCE_LSTM op instead. "
        "rnnkit int8 files with a WHILE loop are calibrated by rnnkit "
        "(`exporters/qat.py`); ops are read from the file, all subgraphs. "
        "`tf_keras`: the same weights in a tf_keras model with a static batch of 1 "
        "(`tf_keras.Input(..., batch_size=1)`, TF_USE_LEGACY_KERAS=1), converted by "
        "`TFLiteConverter.from_keras_model` with builtin ops only; a signal means "
        "the child process died (for int8 GRU/SimpleRNN: a segfault in the "
        "converter's int8 calibration of the WHILE loop).\n\n" + "\n".join(lines)
    )
    return body


if __name__ == "__main__":
    main()
