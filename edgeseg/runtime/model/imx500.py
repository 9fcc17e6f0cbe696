"""A model that runs on the IMX500 (the Raspberry Pi AI Camera): its logits come with each camera
request instead of from an interpreter. :class:`SensorOutputs` is the backend the
:class:`~edgeseg.runtime.model.segmenter.Segmenter` runs it through (post-processing, comparison
and everything after as for any model); :func:`sensor_logits` is the ONE place that decides how
the sensor's output tensor is laid out. Imports no TensorFlow and no Picamera2.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgeseg.core.geometry import Letterbox
from edgeseg.core.metadata import MetadataError, ModelMetadata
from edgeseg.runtime.model.backend import Backend, BackendError, TensorInfo
from edgeseg.runtime.model.segmenter import Pending, Segmenter

METADATA_FILE = "edgeseg.json"  # written by `edgeseg export --target imx500`, kept beside network.rpk


def sensor_logits(tensor: np.ndarray, out_hw, num_classes: int) -> np.ndarray:
    """The logits (h, w, classes) in one of the sensor's output tensors.

    Picamera2's ``IMX500.get_outputs`` reshapes the flat tensor to the shape the firmware reports
    (``get_output_shapes``), in Fortran order. The converter's dnnParams.xml lists the output as
    (h, w, classes) and Picamera2's own examples read a map's channels last (``[:, :, 0]``), so
    (h, w, classes) is taken as it is; (classes, h, w) is transposed. ASSUMED until a camera
    shows it: a wrong guess gives a scrambled mask, which ``--compare model_fp32.tflite`` reveals
    as near-zero agreement. A flat tensor is read as (h, w, classes) in C order.
    """
    h, w = (int(v) for v in out_hw)
    t = np.asarray(tensor, dtype=np.float32)
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.shape == (h, w, num_classes):
        return t
    if t.shape == (num_classes, h, w):
        return np.ascontiguousarray(t.transpose(1, 2, 0))
    if t.size == h * w * num_classes and t.ndim == 1:
        return t.reshape(h, w, num_classes)
    raise BackendError(f"the IMX500 output tensor is {tuple(t.shape)}, but the model's metadata says "
                       f"{h}x{w} logits of {num_classes} classes: is network.rpk the model edgeseg.json describes?")


class SensorOutputs(Backend):
    """A backend whose output is computed elsewhere (on the sensor, or by Sony's quantized model
    in its own environment): :meth:`feed` the logits, then ``run`` returns them."""

    def __init__(self, path, meta: ModelMetadata, description: str = "IMX500 (on the sensor)"):
        h, w = (int(v) for v in meta.input_size)
        s = int(meta.output_stride)
        self.path, self.description = Path(path), description
        self.input = TensorInfo((1, h, w, 3), np.float32)
        self.output = TensorInfo((1, h // s, w // s, meta.num_classes), np.float32)
        self._next: np.ndarray | None = None

    def feed(self, tensor) -> None:
        self._next = sensor_logits(tensor, self.output.shape[1:3], self.output.shape[3])

    def run(self, x: np.ndarray) -> np.ndarray:
        if self._next is None:
            raise BackendError("no IMX500 output for this frame")
        y, self._next = self._next, None
        return y[None]


def read_sensor_metadata(rpk: Path) -> ModelMetadata:
    """The edgeseg metadata of an IMX500 network: ``edgeseg.json`` beside ``network.rpk``."""
    path = Path(rpk).with_name(METADATA_FILE)
    if not path.is_file():
        raise MetadataError(f"no {METADATA_FILE} beside {rpk}: copy the one `edgeseg export --target imx500` "
                            f"wrote into {Path(rpk).parent}")
    meta = ModelMetadata.from_json(path.read_bytes())
    if meta.precision != "imx500":
        raise MetadataError(f"{path} describes a {meta.precision} model, not an IMX500 network")
    return meta


def write_sensor_metadata(folder: Path, meta: ModelMetadata) -> Path:
    from edgeseg.core.files import write_json_atomic

    path = Path(folder) / METADATA_FILE
    write_json_atomic(path, json.loads(meta.to_json()))
    return path


class Imx500Segmenter(Segmenter):
    """``network.rpk`` as the run loop sees any model: the logits come with each frame (the
    sensor's output tensors and the ROI they cover), post-processing is the
    :class:`~edgeseg.runtime.model.segmenter.Segmenter`'s, and the labels are mapped onto the
    ROI of the frame (outside it: 255, unlabelled)."""

    VOID = 255

    def __init__(self, rpk, meta: ModelMetadata | None = None, upsample: str = "auto"):
        meta = meta or read_sensor_metadata(Path(rpk))
        super().__init__(rpk, metadata=meta, upsample=upsample, backend=SensorOutputs(rpk, meta))

    def reopen(self, delegates=()) -> "Imx500Segmenter":
        # the network lives on the sensor: a new one is uploaded when the camera is opened again
        raise BackendError("a new network.rpk goes onto the sensor when the camera opens: restart the run "
                           "(systemctl restart) instead of reloading it")

    def infer(self, image, prepared=None):
        raise BackendError("an IMX500 network runs on the camera: give it --camera csi, not frames")

    def infer_frame(self, frame, prepared=None) -> Pending:
        """The frame's sensor output, over the ROI of the frame it covers."""
        sensor = frame.sensor
        if sensor is None or not sensor.get("outputs"):
            raise BackendError(f"{frame.name} came without IMX500 output tensors: is the camera an AI Camera "
                               f"running {self.path.name}?")
        t0 = time.perf_counter()
        self.backend.feed(sensor["outputs"][0])
        y = self.backend.run(None)[0]
        fh, fw = frame.image.shape[:2]
        x, y0, w, h = (int(round(v)) for v in sensor.get("roi") or (0, 0, fw, fh))
        x, y0 = min(max(x, 0), fw - 1), min(max(y0, 0), fh - 1)
        w, h = max(1, min(w, fw - x)), max(1, min(h, fh - y0))
        times = {"inference": float(sensor.get("dnn_ms") or 0.0), "preprocess": 1000 * (time.perf_counter() - t0)}
        return Pending(y, Letterbox(1.0, *self.input_size), (fh, fw), times, region=(x, y0, w, h))

    def finish(self, pending: Pending) -> np.ndarray:
        """The labels of the ROI (made as for a frame of the ROI's size), in a frame-sized map."""
        x, y, w, h = pending.region
        labels = np.full(pending.frame_hw, self.VOID, np.uint8)
        labels[y:y + h, x:x + w] = super().finish(replace(pending, frame_hw=(h, w)))
        return labels
