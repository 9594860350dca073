"""The edge runtime: runs rnnkit .tflite files with numpy and a LiteRT interpreter only.

It must never import TensorFlow, Keras, or any other rnnkit module outside
`rnnkit.edge`: a device carries this package alone.
"""
