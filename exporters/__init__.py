"""Exporters: rnnkit and Keras 3 recurrent models to builtin-only TFLite/LiteRT.

Example:
    >>> from rnnkit.exporters import export_model
    >>> result = export_model(model, "out/model_int8.tflite", quantize="int8",
    ...                       representative_data=x)             # doctest: +SKIP
"""

from rnnkit.exporters.export import QUANTIZE_MODES, ExportResult, export_model

__all__ = ["QUANTIZE_MODES", "ExportResult", "export_model"]
