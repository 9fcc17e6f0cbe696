"""Quantization: calibration sets for post-training int8, and quantization-aware training."""
