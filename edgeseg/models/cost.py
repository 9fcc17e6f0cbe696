"""Model cost counted from the TensorFlow graph: multiply-adds per frame."""

from __future__ import annotations

from edgeseg._tf import tf


def count_macs(model, batch: int = 1) -> int:
    """Multiply-accumulates of one forward pass, from TensorFlow's graph profiler.

    The profiler counts 2 FLOPs per multiply-add for Conv2D, DepthwiseConv2dNative and MatMul
    (plus elementwise ops); halving its total gives the usual "multiply-adds" figure.
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec([batch, *model.input_shape[1:]], tf.float32)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(concrete)
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # the v1 profiler warns about its own deprecated helpers
    try:
        info = tf.compat.v1.profiler.profile(graph=frozen.graph, options=opts)
    finally:
        logger.setLevel(level)
    return int(info.total_float_ops // 2 // batch)
