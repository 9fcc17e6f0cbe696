"""The export table: one row per model format `edgeseg export` writes (suffix, what it needs,
which options it takes), the formats each target device gets by default, and the integer I/O
types. Plain data, so the CLI checks options before TensorFlow is loaded."""

from __future__ import annotations

from dataclasses import dataclass

IO_TYPES = ("int8", "uint8", "float")
# formulations of the labels head's argmax (edgeseg.export.labels_head says what each is)
LABELS_HEADS = ("argmax", "argmax_int64", "argmax_int32", "select", "equal", "equal_uint8")
DEFAULT_LABELS_HEAD = "argmax"


@dataclass(frozen=True)
class ExportFormat:
    """One row of the export table.

    Args:
        name: what ``--formats`` calls it.
        suffix: appended to the model name.
        calibration: needs a representative dataset (full-integer PTQ).
        qat: converts the quantization-aware-trained model.
        integer_io: takes ``--io`` (int8 / uint8 / float input and output).
        description: shown in the CLI help and the report.
        file: ``tflite`` or ``onnx``.
        base: for ONNX rows, the TFLite row with the same weights and quantization.
        parity: how the parity check judges the file against the fp32 TFLite reference
            (:mod:`edgeseg.export.parity`): ``reference`` (it is the reference, checked against
            Keras), ``float`` (a float copy: pixel agreement; float32 ones against Keras too) or
            ``quantized`` (clear class flips; against ``base`` too when it is written) or
            ``labels`` (a labels head: its masks against those of the logits file it adds the
            head to, through the runtime, and against fp32).
        labels_of: for a labels-head row, the logits row whose graph it ends with the head
            (:mod:`edgeseg.export.labels_head`): uint8 class ids at the input size out.
    """

    name: str
    suffix: str
    calibration: bool = False
    qat: bool = False
    integer_io: bool = False
    description: str = ""
    file: str = "tflite"
    base: str | None = None
    parity: str = "quantized"
    float32: bool = False  # float32 weights and activations: checked against Keras too
    labels_of: str | None = None

    @property
    def head(self) -> str:
        return "labels" if self.labels_of else "logits"


EXPORT_FORMATS = {f.name: f for f in (
    ExportFormat("fp32", "_fp32.tflite", description="float32 reference (XNNPACK CPU)", parity="reference",
                 float32=True),
    ExportFormat("fp16", "_fp16.tflite", description="float16 weights (GPU delegate)", parity="float"),
    ExportFormat("dynamic", "_dynamic.tflite", description="int8 weights, float activations"),
    ExportFormat("int8", "_int8.tflite", calibration=True, integer_io=True,
                 description="full-integer PTQ, calibrated on training frames (CPU, NNAPI, Edge TPU)"),
    # The converter takes the QAT ranges and wants representative frames for the few tensors
    # tfmot leaves without fake-quant (the float32 logits cast), so QAT calibrates too.
    ExportFormat("qat", "_qat_int8.tflite", calibration=True, qat=True, integer_io=True,
                 description="full-integer from quantization-aware training"),
    ExportFormat("onnx_fp32", "_fp32.onnx", description="float32 ONNX (ONNX Runtime: TensorRT, CUDA, CPU)",
                 file="onnx", base="fp32", parity="float", float32=True),
    ExportFormat("onnx_int8", "_int8.onnx", calibration=True, file="onnx", base="int8",
                 description="int8 QDQ ONNX with the PTQ model's calibration"),
    ExportFormat("onnx_qat", "_qat_int8.onnx", calibration=True, qat=True, file="onnx", base="qat",
                 description="int8 QDQ ONNX from quantization-aware training"),
    # Labels heads (--labels-head): the upsample and argmax in the graph, uint8 class ids out.
    # Float files only: an int8 graph would upsample its logits in int8 steps and tie classes.
    ExportFormat("fp32_labels", "_fp32_labels.tflite", parity="labels", labels_of="fp32",
                 description="float32 with the labels head (class ids at the input size)"),
    ExportFormat("fp16_labels", "_fp16_labels.tflite", parity="labels", labels_of="fp16",
                 description="float16 weights with the labels head"),
    ExportFormat("onnx_fp32_labels", "_fp32_labels.onnx", file="onnx", base="fp32_labels", parity="labels",
                 labels_of="onnx_fp32", description="float32 ONNX with the labels head (TensorRT)"),
)}


def with_labels_heads(names) -> tuple[str, ...]:
    """``names`` and, after them, the labels-head twin of each (--labels-head); ValueError when
    none of them has one."""
    twins = [row.name for row in EXPORT_FORMATS.values() if row.labels_of in names]
    if not twins:
        heads = sorted(row.labels_of for row in EXPORT_FORMATS.values() if row.labels_of)
        raise ValueError(f"a labels head is made for the float files ({', '.join(heads)}), none of which is chosen")
    return tuple(dict.fromkeys([*names, *twins]))
FILE_KINDS = ("tflite", "onnx", "both")


def with_files(names, kind: str) -> tuple[str, ...]:
    """The formats for ``--format tflite|onnx|both``: each TFLite precision as that kind of file;
    ValueError naming a precision that has no ONNX form."""
    onnx = {row.base: row.name for row in EXPORT_FORMATS.values() if row.file == "onnx"}
    if kind != "tflite":
        missing = [n for n in names if n not in onnx and EXPORT_FORMATS.get(n, ExportFormat(n, "")).file != "onnx"]
        if missing:
            chosen = (name for name in onnx if not EXPORT_FORMATS[name].labels_of)  # --labels-head adds those
            raise ValueError(f"{missing[0]} has no ONNX form (ONNX: {', '.join(chosen)})")
    out = []
    for name in names:
        if kind != "onnx" or name not in onnx:
            out.append(name)
        if kind != "tflite" and name in onnx:
            out.append(onnx[name])
    return tuple(dict.fromkeys(out))


TARGETS = {
    "cpu": ("fp32", "int8"),
    # the labels head (--labels-head) is not added: on an H200 LiteRT's GPU accelerator left part
    # of a hand-made (likely int64) upsample + ARG_MAX graph on the CPU, 14x slower than the logits
    # file (issue 29); ours (int32 ids) ran whole on Mesa's llvmpipe, NVIDIA is unmeasured
    # (docs/benchmarks.md, "A labels head in the graph")
    "gpu": ("fp32", "fp16"),
    "nnapi": ("fp32", "int8"),
    "edgetpu": ("int8",),
}
