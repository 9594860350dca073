"""rnnkit: recurrent networks on Keras 3, exported to builtin-only TFLite/LiteRT.

Importing `rnnkit` is cheap and never imports TensorFlow: the edge runtime
(`rnnkit.edge`) must load on a device that has only numpy and a LiteRT
interpreter. The Keras half is reached through its submodules, which import
TensorFlow on first use:

    from rnnkit import layers, models, training   # imports Keras
    from rnnkit.edge import EdgeModel               # numpy + LiteRT only
"""

import importlib

__version__ = "0.1.0"

# Submodules that need Keras are loaded on first attribute access (PEP 562), so that
# `import rnnkit` stays TensorFlow-free.
_LAZY_SUBMODULES = (
    "attention",
    "cudnn",
    "data",
    "diagnostics",
    "edge",
    "layers",
    "models",
    "tasks",
    "training",
)

__all__ = ["__version__", *_LAZY_SUBMODULES]


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
