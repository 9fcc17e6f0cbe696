"""The model: what runs a model file (LiteRT on the CPU or its GPU accelerator, ONNX Runtime,
TensorRT) behind one interface, the metadata readers, the segmenter (frame in, label map out)
and its upsampling maths, and the benchmark and scoring of model files. Imports nothing of the
sources, the run or the server."""
