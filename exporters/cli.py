"""`rnnkit export` and `rnnkit inspect`.

Heavy imports (TensorFlow, Keras) happen inside the handlers; `rnnkit inspect`
needs only the edge runtime.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def register(cli) -> None:
    parser = cli.command(
        "export",
        "Export a .keras recurrent model to a builtin-only (quantized) .tflite file.",
        _export,
    )
    parser.add_argument("model", help="the .keras file")
    parser.add_argument("-o", "--output", required=True, help="the .tflite to write")
    parser.add_argument(
        "--quantize",
        default="float32",
        choices=["float32", "float16", "dynamic", "int8"],
        help="weights/activations type (int8 needs --representative-data)",
    )
    parser.add_argument(
        "--streaming", action="store_true", help="export the one-step model"
    )
    parser.add_argument(
        "--micro",
        action="store_true",
        help="check in TFLite Micro, report the arena, write .cc/.h",
    )
    parser.add_argument(
        "--representative-data",
        default=None,
        help=".npy of sample inputs, batch first (required for int8)",
    )
    lstm_form = parser.add_mutually_exclusive_group()
    lstm_form.add_argument(
        "--lstm-loop",
        action="store_true",
        help="lower LSTMs to a WHILE loop (the default: LiteRT runs it faster "
        "on CPUs than the fused op)",
    )
    lstm_form.add_argument(
        "--lstm-fused",
        action="store_true",
        help="lower LSTMs to the fused UNIDIRECTIONAL_SEQUENCE_LSTM op (for "
        "runtimes and tools that expect it; the smallest file, but its int8 "
        "kernel is slow on x86)",
    )
    parser.add_argument(
        "--metadata", default=None, help="JSON file of metadata to embed"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary")

    parser = cli.command(
        "inspect",
        "Verify a .tflite file and show its ops, tensors, quantization and metadata.",
        _inspect,
    )
    parser.add_argument("model", help="the .tflite file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--micro", action="store_true", help="also check it in TFLite Micro"
    )


def _export(args) -> int:
    import json
    from pathlib import Path

    import numpy as np
    from rnnkit.exporters import export_model

    from rnnkit.errors import UsageError

    samples = None
    if args.representative_data:
        data_path = Path(args.representative_data)
        if not data_path.is_file():
            raise UsageError(
                f"Representative data file not found. Expected a .npy file. "
                f"Received: {data_path}"
            )
        try:
            samples = np.load(data_path, allow_pickle=False)
        except ValueError as error:
            raise UsageError(
                f"Could not read {data_path} as a .npy array (pickles are refused). "
                f"Received: {error}"
            ) from error
    metadata = None
    if args.metadata:
        try:
            metadata = json.loads(Path(args.metadata).read_text())
        except (OSError, ValueError) as error:
            raise UsageError(
                f"--metadata must name a JSON file. Received: {args.metadata} ({error})"
            ) from error
    result = export_model(
        args.model,
        args.output,
        quantize=args.quantize,
        representative_data=samples,
        streaming=args.streaming,
        micro=args.micro,
        metadata=metadata,
        fuse_lstm=True if args.lstm_fused else (False if args.lstm_loop else None),
    )
    summary = {
        "path": str(result.path),
        "size_bytes": result.size_bytes,
        "ops": result.ops,
        "max_abs_diff": result.parity.get("max_abs_diff"),
        "runs_in_tflite_micro": result.parity.get("runs_in_tflite_micro"),
    }
    if args.json:
        from rnnkit.cli import print_json_line

        print_json_line(summary)
    else:
        for key, value in summary.items():
            logger.info("%s: %s", key, value)
    return 0


def inspect_model(path) -> dict:
    """Verifies a .tflite file and describes it (ops, tensors, metadata)."""
    from pathlib import Path

    import numpy as np

    from rnnkit.edge import EdgeModel

    model = EdgeModel(Path(path))
    tensors = []
    for d in model.interpreter.get_tensor_details():
        scale, zero_point = d["quantization"]
        tensors.append(
            {
                "index": int(d["index"]),
                "name": d["name"],
                "dtype": np.dtype(d["dtype"]).name,
                "shape": [int(s) for s in d["shape_signature"]],
                "scale": float(scale),
                "zero_point": int(zero_point),
            }
        )
    return {
        "path": str(path),
        "size_bytes": model.size_bytes,
        "sha256": model.verified["sha256"],
        "checks": model.verified["checked"],
        "ops": model.ops,
        "inputs": [
            t
            for t in tensors
            if t["index"] in {d["index"] for d in model._input_details}
        ],
        "outputs": [
            t
            for t in tensors
            if t["index"] in {d["index"] for d in model._output_details}
        ],
        "num_tensors": len(tensors),
        "tensors": tensors,
        "metadata": model.metadata,
    }


def _inspect(args) -> int:
    from pathlib import Path

    from rnnkit.edge import EdgeError
    from rnnkit.errors import ModelFileError

    try:
        report = inspect_model(args.model)
    except EdgeError as error:
        raise ModelFileError(str(error)) from error
    if args.micro:
        from rnnkit.exporters.micro import run_in_micro

        report["micro"] = run_in_micro(Path(args.model).read_bytes())
    if args.json:
        from rnnkit.cli import print_json_line

        print_json_line(report)
        return 0
    logger.info(
        "%s: %d bytes, sha256 %s (%s)",
        report["path"],
        report["size_bytes"],
        report["sha256"],
        ", ".join(report["checks"]),
    )
    logger.info("ops: %s", ", ".join(report["ops"]))
    for kind in ("inputs", "outputs"):
        for t in report[kind]:
            logger.info(
                "%s %s %s %s scale=%g zero_point=%d",
                kind[:-1],
                t["name"],
                t["dtype"],
                t["shape"],
                t["scale"],
                t["zero_point"],
            )
    logger.info("tensors: %d", report["num_tensors"])
    logger.info("metadata: %s", report["metadata"])
    if "micro" in report:
        logger.info("TFLite Micro: %s", report["micro"])
    return 0
