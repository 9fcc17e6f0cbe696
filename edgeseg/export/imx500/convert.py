"""Runs INSIDE Sony's IMX500 environment (TensorFlow 2.15, MCT; ``make imx500-env``), started by
:mod:`edgeseg.export.imx500.export` as ``VENV/bin/python convert.py SPEC.json``: a model saved by
tf-keras 2.21 does not load in TensorFlow 2.15, so the architecture is rebuilt here by edgeseg's
own builder (which runs under TF 2.15's Keras) and the run's weights are loaded into it, then
quantized by MCT for the IMX500 and exported as the ``.keras`` file ``imxconv-tf`` takes.

It imports only edgeseg's config and model builder (numpy, yaml, TensorFlow), from a path
appended to ``sys.path`` after this environment's own packages. What it measures is written as
files; the scoring is the caller's.

With ``"mode": "predict"`` it instead loads a quantized ``.keras`` file (``keras``) and writes its
logits on ``frames`` (.npz) to ``logits_out``: `edgeseg evaluate` of the MCT model.

SPEC (JSON): ``edgeseg_path``, ``model`` (the run's ModelConfig as a dict), ``num_classes``,
``input_size``, ``weights`` (.h5), ``scale``/``offset`` (the backbone's normalisation, applied
to the frames here: the exported graph takes normalised input), ``calibration`` (.npz of
letterboxed frames, 0-255), ``val`` (.npz, optional: frames for the int8 drop), ``keras_out``,
``logits_out``, ``result_out``, ``batch_size``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

TPC_VERSION = "4.0"  # edge-mdt-tpc's IMX500 target platform: what converted (docs/imx500.md)


def _normalised(frames, scale, offset):
    import numpy as np

    return frames.astype(np.float32) * np.float32(scale) + np.float32(offset)


def build(spec: dict):
    """The run's architecture under this TensorFlow, without its Rescaling layer, weights loaded."""
    from edgeseg.config import ModelConfig
    from edgeseg.models.deeplabv3plus import build_deeplabv3plus

    model = build_deeplabv3plus(ModelConfig(**spec["model"]), spec["num_classes"], tuple(spec["input_size"]),
                                final_upsample=False, normalize=False)
    model.load_weights(spec["weights"], by_name=True)
    return model


def quantize(model, spec: dict):
    """MCT post-training quantization for the IMX500 on the calibration frames."""
    import numpy as np
    import model_compression_toolkit as mct
    from edgemdt_tpc import get_target_platform_capabilities

    frames = np.load(spec["calibration"])["frames"]
    batch = int(spec.get("batch_size", 8))

    def representative():
        for i in range(0, len(frames), batch):
            yield [_normalised(frames[i:i + batch], spec["scale"], spec["offset"])]

    tpc = get_target_platform_capabilities(TPC_VERSION, "imx500")
    quantized, _ = mct.ptq.keras_post_training_quantization(model, representative, target_platform_capabilities=tpc)
    mct.exporter.keras_export_model(model=quantized, save_model_path=spec["keras_out"])
    return quantized, mct.__version__


def logits(model, quantized, spec: dict) -> int:
    """Stride-4 logits of the float and the quantized model on the val frames: the int8 drop."""
    import numpy as np

    if not spec.get("val"):
        return 0
    frames = np.load(spec["val"])["frames"]
    out = {"float": [], "quantized": []}
    for i in range(0, len(frames), 4):
        x = _normalised(frames[i:i + 4], spec["scale"], spec["offset"])
        out["float"].append(model(x, training=False).numpy())
        out["quantized"].append(quantized(x, training=False).numpy())
    np.savez(spec["logits_out"], **{k: np.concatenate(v) for k, v in out.items()})
    return len(frames)


def predict(spec: dict) -> int:
    """The quantized model's stride-4 logits on the frames."""
    import numpy as np
    from mct_quantizers import keras_load_quantized_model

    model = keras_load_quantized_model(spec["keras"])
    frames = np.load(spec["frames"])["frames"]
    out = [model(_normalised(frames[i:i + 4], spec["scale"], spec["offset"]), training=False).numpy()
           for i in range(0, len(frames), 4)]
    np.savez(spec["logits_out"], quantized=np.concatenate(out))
    return len(frames)


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    sys.path.append(spec["edgeseg_path"])  # after this environment's packages: only edgeseg comes from there
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TF 2.15's own Keras 2, which MCT matches layers of; edgeseg._tf would ask for tf_keras
    os.environ["TF_USE_LEGACY_KERAS"] = "0"
    import tensorflow as tf

    if spec.get("mode") == "predict":
        Path(spec["result_out"]).write_text(json.dumps({"tensorflow": tf.__version__, "frames": predict(spec)}))
        return

    t0 = time.perf_counter()
    model = build(spec)
    quantized, mct_version = quantize(model, spec)
    t1 = time.perf_counter()
    frames = logits(model, quantized, spec)
    Path(spec["result_out"]).write_text(json.dumps({
        "tensorflow": tf.__version__, "mct": mct_version, "tpc": TPC_VERSION, "ptq_seconds": round(t1 - t0, 1),
        "val_frames": frames}))


if __name__ == "__main__":
    main(sys.argv[1])
