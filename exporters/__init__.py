"""Exporters: rnnkit and Keras 3 recurrent models to builtin-only TFLite/LiteRT."""
