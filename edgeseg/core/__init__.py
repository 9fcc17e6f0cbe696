"""What the training side and the device runtime share, without TensorFlow: file writing,
and (as it moves here) label reading, letterbox geometry, metrics and the model schema."""
