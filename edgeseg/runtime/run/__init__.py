"""The run: the loop that takes frames through a segmenter, its outputs (overlay, video, masks),
statistics, live scores (agreement with a float model, labels), device health and the signals a
service manager sends."""
