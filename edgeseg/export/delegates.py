"""Which ops of an exported graph each delegate cannot run, from allow-lists kept here.

We do not trust ``tf.lite.experimental.Analyzer(gpu_compatibility=True)``: in TF 2.21 it
approves every op, ARG_MAX included (tensorflow#77042), while the GPU delegate rejects ARG_MAX
when it prepares the graph. Ops outside a list run on the CPU (a graph split) or, for the Edge
TPU compiler, after the first unsupported op everything runs on the CPU.

Sources (review when upgrading LiteRT):
- gpu: tensorflow/lite/delegates/gpu/common/model_builder.cc (``NewOperationParser``) and the
  "GPU delegate: supported ops" table of the LiteRT docs.
- nnapi: tensorflow/lite/delegates/nnapi/nnapi_delegate.cc (``Validate``), ops available from
  Android API 29 (NNAPI 1.2), the level most current devices run.
- edgetpu: coral.ai "TensorFlow models on the Edge TPU", supported operations table
  (int8 quantized models only).
- xnnpack: tensorflow/lite/delegates/xnnpack/README.md, "Supported operators".
"""

from __future__ import annotations

GPU_OPS = frozenset("""
ABS ADD AVERAGE_POOL_2D BATCH_MATMUL CAST CONCATENATION CONV_2D COS DEPTH_TO_SPACE
DEPTHWISE_CONV_2D DEQUANTIZE DIV ELU EQUAL EXP FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED
GREATER GREATER_EQUAL HARD_SWISH LEAKY_RELU LESS LESS_EQUAL LOG LOGISTIC MAXIMUM MAX_POOL_2D
MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD PADV2 POW PRELU QUANTIZE REDUCE_MAX
REDUCE_MIN REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR
RESIZE_NEAREST_NEIGHBOR RSQRT SIN SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE
SQUARED_DIFFERENCE STRIDED_SLICE SUB SUM TANH TILE TRANSPOSE TRANSPOSE_CONV
""".split())

NNAPI_OPS = frozenset("""
ABS ADD ARG_MAX ARG_MIN AVERAGE_POOL_2D BATCH_TO_SPACE_ND CAST CONCATENATION CONV_2D
DEPTH_TO_SPACE DEPTHWISE_CONV_2D DEQUANTIZE DIV ELU EQUAL EXP EXPAND_DIMS FLOOR
FULLY_CONNECTED GATHER GREATER GREATER_EQUAL HARD_SWISH L2_NORMALIZATION LESS LESS_EQUAL
LOCAL_RESPONSE_NORMALIZATION LOG LOGISTIC LOG_SOFTMAX LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM
MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD PADV2 POW PRELU QUANTIZE REDUCE_MAX REDUCE_MIN
REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR RSQRT
SELECT SELECT_V2 SIN SLICE SOFTMAX SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT SPLIT_V SQRT
SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM TANH TILE TOPK_V2 TRANSPOSE TRANSPOSE_CONV
""".split())

EDGETPU_OPS = frozenset("""
ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEQUANTIZE EXPAND_DIMS
FULLY_CONNECTED L2_NORMALIZATION LOGISTIC LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM MUL PACK PAD
PRELU QUANTIZE REDUCE_MAX REDUCE_MIN RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR
RESIZE_NEAREST_NEIGHBOR RSQRT SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SQUARED_DIFFERENCE SQUEEZE
STRIDED_SLICE SUB SUM TANH TRANSPOSE TRANSPOSE_CONV
""".split())

XNNPACK_OPS = frozenset("""
ABS ADD AVERAGE_POOL_2D BATCH_MATMUL CEIL CONCATENATION CONV_2D DEPTH_TO_SPACE
DEPTHWISE_CONV_2D DEQUANTIZE DIV ELU FLOOR FULLY_CONNECTED GELU HARD_SWISH LEAKY_RELU LOGISTIC
MAXIMUM MAX_POOL_2D MEAN MINIMUM MUL NEG PAD PADV2 PRELU QUANTIZE RELU RELU6 RELU_N1_TO_1
RESHAPE RESIZE_BILINEAR ROUND RSQRT SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SQRT SQUARE
SQUARED_DIFFERENCE STRIDED_SLICE SUB TANH TRANSPOSE TRANSPOSE_CONV
""".split())

DELEGATE_OPS = {"xnnpack": XNNPACK_OPS, "gpu": GPU_OPS, "nnapi": NNAPI_OPS, "edgetpu": EDGETPU_OPS}


def graph_ops(model_bytes: bytes) -> dict[str, int]:
    """Builtin op name -> count, over all subgraphs of a .tflite model."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    counts: dict[str, int] = {}
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            name = code.customCode.decode() if builtin == schema.BuiltinOperator.CUSTOM else names.get(builtin, str(builtin))
            counts[name] = counts.get(name, 0) + 1
    return counts


def unsupported_ops(ops, delegate: str) -> dict[str, int]:
    """The ops in ``ops`` (name -> count) that ``delegate`` cannot run."""
    allowed = DELEGATE_OPS[delegate]
    return {name: n for name, n in sorted(ops.items()) if name not in allowed}


def compatibility_report(model_bytes: bytes) -> dict:
    ops = graph_ops(model_bytes)
    return {"ops": ops, "unsupported": {d: unsupported_ops(ops, d) for d in DELEGATE_OPS}}
