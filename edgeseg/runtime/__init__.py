"""The device runtime: numpy, OpenCV and LiteRT (or ONNX Runtime / TensorRT), never TensorFlow.

Four packages with one-way dependencies (tests/test_architecture.py reads them from the imports):
``model`` (what runs a model file, the segmenter), ``sources`` (cameras, streams, files, boards),
``run`` (the loop, outputs, statistics, scores, health, signals) and ``serve`` (preview server,
metrics). ``model`` imports nothing of the other three; ``sources`` nothing of ``model``.
Nothing here imports TensorFlow (a test imports it in a fresh process and checks ``sys.modules``).
"""
