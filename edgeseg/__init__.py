"""edgeseg: DeepLabv3+ semantic segmentation from training to an int8 model on an edge device.

Importing the package imports neither TensorFlow nor OpenCV; the heavy modules are imported by
the commands that need them.
"""

__version__ = "0.1.0"
