"""The edge runtime: runs rnnkit .tflite files with numpy and a LiteRT interpreter only.

It must never import TensorFlow, Keras, or any other rnnkit module outside
`rnnkit.edge`: a device carries this package alone.

Example:
    >>> from rnnkit.edge import EdgeModel
    >>> model = EdgeModel("out/model_int8.tflite")      # doctest: +SKIP
    >>> probabilities = model.run(token_ids)[0]          # doctest: +SKIP
"""

from rnnkit.edge._errors import EdgeError, EdgeUsageError, ModelFileError
from rnnkit.edge.runtime import EdgeModel, Stream, verify_model_bytes

__all__ = [
    "EdgeError",
    "EdgeModel",
    "EdgeUsageError",
    "ModelFileError",
    "Stream",
    "verify_model_bytes",
]
