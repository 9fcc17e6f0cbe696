"""The one place where TensorFlow is imported.

tensorflow-model-optimization only works with Keras 2, so ``TF_USE_LEGACY_KERAS`` must be set
before TensorFlow is first imported. Every training-side module gets ``tf`` and ``keras`` (the
``tf_keras`` package) from here; ``edgeseg.runtime`` never imports this module.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras"]
