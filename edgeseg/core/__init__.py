"""What the training side and the device runtime share, without TensorFlow: classes and label
maps, image and label reading, letterbox geometry, confusion-matrix metrics, the model-metadata
schema, atomic file writes, typed errors and the quieting of C++ libraries' start-up lines."""
