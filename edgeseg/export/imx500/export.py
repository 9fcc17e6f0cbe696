"""`edgeseg export RUN --target imx500`: the files the Raspberry Pi AI Camera takes, made by Sony's
toolchain in its own environment (:mod:`.toolchain`).

1. the configuration is checked against the sensor's measured limits (:mod:`.limits`) before
   anything long runs;
2. the run's calibration frames (never its held-out ones) and val frames are letterboxed here;
3. ``convert.py`` rebuilds the model under TensorFlow 2.15, loads the run's weights, quantizes it
   with MCT for the IMX500 and writes the ``.keras`` file, with the float and quantized logits
   on the val frames (the int8 drop, scored here);
4. ``imxconv-tf --no-input-persistency`` makes ``packerOut.zip``, ``dnnParams.xml`` and the
   memory report; a failure is one line with the converter's reason, its log kept.
Beside them: ``labels.txt``, ``edgeseg.json`` (the model's metadata, which ``edgeseg run``
reads beside ``network.rpk``) and ``export.json``.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edgeseg import __version__
from edgeseg.config import TrainConfig
from edgeseg.core.errors import ExportError
from edgeseg.core.files import write_json_atomic, write_text_atomic
from edgeseg.export.imx500.limits import check_imx500
from edgeseg.export.imx500.toolchain import CONVERT_SCRIPT, clean_env, find_toolchain
from edgeseg.rundir import RunDir

log = logging.getLogger("edgeseg")

CONVERTER_OUTPUTS = ("packerOut.zip", "dnnParams.xml")
DROP_FRAMES = 100  # val frames the int8 drop is scored on (CamVid's val split: 101)


def outputs(out_dir: Path, stem: str) -> dict:
    """What an IMX500 export writes, by role."""
    return {"packer": out_dir / "packerOut.zip", "dnn_params": out_dir / "dnnParams.xml",
            "memory_report": out_dir / f"{stem}_MemoryReport.json", "graph": out_dir / f"{stem}.pbtxt",
            "quantized": out_dir / f"{stem}.keras", "labels": out_dir / "labels.txt",
            "metadata": out_dir / "edgeseg.json", "report": out_dir / "export.json"}


def plan_imx500(run_dir: Path, options) -> dict:
    """Everything checked before the long work: the run, the sensor's limits, the toolchain,
    files that exist without ``--force``. Returns what the export needs."""
    from edgeseg.export.exporter import _prepare_out_dir

    run = RunDir(Path(run_dir)).require()
    config = TrainConfig.load(run.config)
    dataset = json.loads(run.dataset.read_text())
    size = tuple(config.data.eval_size)
    verdict = check_imx500(config.model, len(dataset["class_names"]), size)
    if verdict.refused:
        raise ExportError(verdict.line())
    if verdict.status == "unknown":
        log.warning("%s", verdict.line())
    toolchain = find_toolchain()
    out_dir = Path(options.out_dir or run.path / "export" / "imx500")
    stem = f"{run.path.name}_imx500"
    files = outputs(out_dir, stem)
    _prepare_out_dir(out_dir)
    existing = [path for path in files.values() if path.exists()]
    if existing and not options.force:
        raise ExportError(f"{existing[0]} exists; pass --force to overwrite")
    return {"run": run, "config": config, "dataset": dataset, "size": size, "verdict": verdict,
            "toolchain": toolchain, "out_dir": out_dir, "stem": stem, "files": files}


def export_imx500(run_dir: Path, options, progress=None) -> dict:
    """Export a run for the IMX500; returns the report also written to ``export.json``."""
    from edgeseg.export.exporter import _calibration_items, _held_out
    from edgeseg.quant.calibrate import check_calibration_size, load_calibration_frames

    plan = plan_imx500(run_dir, options)
    run, config, size, out_dir = plan["run"], plan["config"], plan["size"], plan["out_dir"]
    root, fmt = _source(plan, options)
    calib_items, manifest = _calibration_items(root, fmt, options, plan["dataset"], out_dir,
                                               _held_out(config, plan["dataset"], root))
    check_calibration_size(len(calib_items))
    val_items = _val_items(config, root, fmt, options)
    report = {"run": str(run.path), "target": "imx500", "input_size": list(size), "edgeseg": __version__,
              "verdict": asdict(plan["verdict"]),
              "calibration": {"frames": len(calib_items), "manifest": str(manifest), "select": options.calib_select}}
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".imx500-") as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "calibration.npz", frames=_frames(calib_items, size, load_calibration_frames, progress))
        if val_items:
            np.savez(tmp / "val.npz", frames=_frames(val_items, size, load_calibration_frames, progress))
        spec = _spec(plan, tmp, bool(val_items))
        report["mct"] = run_mct(plan["toolchain"], spec, tmp, out_dir)
        report["converter"] = run_converter(plan["toolchain"], Path(spec["keras_out"]), tmp / "out", out_dir)
        if val_items:
            report["parity"] = {"imx500": int8_drop(np.load(spec["logits_out"]), val_items, plan)}
        _place(plan, tmp)
    report["memory"] = memory_figures(plan["files"]["memory_report"])
    report["files"] = {k: str(p) for k, p in plan["files"].items() if k != "report"}
    write_json_atomic(plan["files"]["report"], report)
    return report


def _source(plan: dict, options):
    from edgeseg.data import resolve_format

    if options.calib_data is not None:
        return options.calib_data, resolve_format(options.calib_data, options.calib_format)
    return plan["dataset"].get("root"), options.calib_format or plan["dataset"]["format"]


def _val_items(config, root, fmt, options) -> list:
    """The val frames the int8 drop is scored on (none when the dataset has no val split)."""
    from edgeseg.core.errors import DataError
    from edgeseg.data import load_split

    val_root, val_fmt = (root, fmt) if options.calib_data is not None else config.data.val_data(root, fmt)
    try:
        return load_split(val_root, val_fmt, config.data.val_split).items[:DROP_FRAMES]
    except DataError as e:
        log.warning("the int8 drop is not measured: no %s split (%s)", config.data.val_split, e)
        return []


def _frames(items, size, load, progress) -> np.ndarray:
    # float16 holds 0-255 and the 127.5 padding exactly, at half the size
    return np.concatenate(load(items, size, progress=progress)).astype(np.float16)


def _spec(plan: dict, tmp: Path, with_val: bool) -> dict:
    from edgeseg.models.backbones import get_backbone

    config, spec = plan["config"], get_backbone(plan["config"].model.backbone)
    model = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config.model).items()}
    out = {"edgeseg_path": str(Path(__file__).resolve().parents[3]), "model": model,
           "num_classes": len(plan["dataset"]["class_names"]), "input_size": list(plan["size"]),
           "weights": str(plan["run"].weights().resolve()), "scale": list(spec.scale), "offset": list(spec.offset),
           "calibration": str(tmp / "calibration.npz"), "val": str(tmp / "val.npz") if with_val else None,
           "keras_out": str(tmp / plan["files"]["quantized"].name), "logits_out": str(tmp / "logits.npz"),
           "result_out": str(tmp / "mct.json")}
    (tmp / "spec.json").write_text(json.dumps(out))
    return out


def _run_logged(argv: list, log_path: Path, what: str) -> tuple[int, str, float]:
    """Run a toolchain process with its output in ``log_path``; (exit code, output, seconds)."""
    t0 = time.perf_counter()
    log.info("%s: %s (log: %s)", what, " ".join(map(str, argv)), log_path)
    with open(log_path, "w") as f:
        done = subprocess.run([str(a) for a in argv], stdout=f, stderr=subprocess.STDOUT, env=clean_env(),
                              stdin=subprocess.DEVNULL)
    return done.returncode, log_path.read_text(errors="replace"), time.perf_counter() - t0


def run_mct(toolchain, spec: dict, tmp: Path, out_dir: Path) -> dict:
    log_path = out_dir / "imx500_mct.log"
    code, text, seconds = _run_logged([toolchain.python, CONVERT_SCRIPT, tmp / "spec.json"], log_path,
                                      "quantizing with MCT")
    if code != 0 or not Path(spec["result_out"]).is_file():
        raise ExportError(f"MCT quantization failed: {failure_reason(text) or f'exit {code}'} (log: {log_path})")
    return {**json.loads(Path(spec["result_out"]).read_text()), "seconds": round(seconds, 1), "log": str(log_path)}


def run_converter(toolchain, keras_file: Path, conv_dir: Path, out_dir: Path) -> dict:
    log_path = out_dir / "imxconv.log"
    code, text, seconds = _run_logged([toolchain.imxconv, "-i", keras_file, "-o", conv_dir, "--no-input-persistency",
                                       "--overwrite-output"], log_path, "converting with imxconv-tf")
    missing = [n for n in CONVERTER_OUTPUTS if not (conv_dir / n).is_file()]
    if code != 0 or missing:
        reason = failure_reason(text) or (f"exit {code}" if code else f"no {missing[0]} written")
        raise ExportError(f"imxconv-tf failed: {reason} (log: {log_path})")
    return {"seconds": round(seconds, 1), "log": str(log_path)}


_NOISE = re.compile(r"cuda|cudnn|cufft|cublas|tensorrt|oneDNN|cpu_feature_guard", re.IGNORECASE)
_ERROR = re.compile(r"\b(error|exception|failed|fatal)\b", re.IGNORECASE)


def failure_reason(text: str) -> str | None:
    """The converter's (or MCT's) own reason in a log: the last line that says an error, without
    TensorFlow's start-up noise; the timestamp and log level cut off."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not _NOISE.search(line)]
    said = [line for line in lines if _ERROR.search(line)]
    if not said:
        return lines[-1][:300] if lines else None
    line = said[-1]
    line = re.sub(r"^\d{4}-\d\d-\d\d[ T][\d:.,]+\s*", "", line)  # "2026-12-04 18:08:02.414 "
    return re.sub(r"^(ERROR|INFO|WARNING|CRITICAL)\s*:\s*", "", line)[:300]


def _place(plan: dict, tmp: Path) -> None:
    """Move the converter's files, the quantized model, labels and metadata into place."""
    from edgeseg.runtime.model.imx500 import write_sensor_metadata

    files, conv = plan["files"], tmp / "out"
    stem = Path(files["quantized"]).stem
    for key, name in (("packer", "packerOut.zip"), ("dnn_params", "dnnParams.xml"),
                      ("memory_report", f"{stem}_MemoryReport.json"), ("graph", f"{stem}.pbtxt")):
        if (conv / name).is_file():
            (conv / name).replace(files[key])
    (tmp / files["quantized"].name).replace(files["quantized"])
    write_text_atomic(files["labels"], "".join(f"{n}\n" for n in plan["dataset"]["class_names"]))
    write_sensor_metadata(plan["out_dir"], sensor_metadata(plan))


def sensor_metadata(plan: dict):
    from edgeseg.core.metadata import ModelMetadata
    from edgeseg.data import label_map_of
    from edgeseg.models.backbones import get_backbone

    ds, spec = plan["dataset"], get_backbone(plan["config"].model.backbone)
    best = plan["run"].read_json(plan["run"].best_json)
    return ModelMetadata(
        class_names=ds["class_names"], colors=ds["colors"], input_size=list(plan["size"]), output="logits",
        output_stride=4, scale=list(spec.scale), offset=list(spec.offset), precision="imx500",
        source_run=str(plan["run"].path), float_miou=best.get("miou"), dataset=ds.get("name"),
        edgeseg_version=__version__, **ModelMetadata.label_fields(label_map_of(ds["format"], len(ds["class_names"]), ds)),
        extra={"input_normalisation": "(p - 128) / 128 on the sensor, from the input quantization"})


def memory_figures(path: Path) -> dict:
    """The memory report's figures (``Memory Usage``, ``Memory Utilization``, ``Fit In Chip``, ...)."""
    if not Path(path).is_file():
        return {}
    report = json.loads(Path(path).read_text()).get("Memory Report", {})
    return {k: v for k, v in report.items() if not isinstance(v, (list, dict))}


def int8_drop(logits, val_items, plan: dict) -> dict:
    """The float and MCT-quantized models scored on the val frames as the runtime scores any
    model file (the exact upsampling at each frame's resolution), and their pixel agreement."""
    from edgeseg.core import metrics
    from edgeseg.data import label_map_of

    meta = sensor_metadata(plan)
    label_map = label_map_of(plan["dataset"]["format"], meta.num_classes, plan["dataset"])
    cms, agree = score_logits({k: logits[k] for k in ("float", "quantized")}, val_items, meta, label_map)
    scores = {k: metrics.summarize(cm, meta.class_names) for k, cm in cms.items()}
    return {"frames": len(val_items), "split": plan["config"].data.val_split,
            "miou_float": scores["float"]["miou"], "miou_quantized": scores["quantized"]["miou"],
            "drop_points": 100 * (scores["float"]["miou"] - scores["quantized"]["miou"]),
            "pixel_agreement": agree, "per_class_iou_quantized": scores["quantized"]["per_class_iou"]}


def score_logits(logits: dict, items, meta, label_map, progress=None):
    """Confusion matrices of models whose stride-4 logits on the letterboxed ``items`` were
    computed elsewhere (by name), through the runtime's post-processing at each frame's own
    resolution; and the mean pixel agreement of the first two."""
    from edgeseg.core import metrics
    from edgeseg.core.images import read_image, read_label
    from edgeseg.runtime.model.imx500 import SensorOutputs
    from edgeseg.runtime.model.segmenter import Segmenter

    n = meta.num_classes
    cms = {k: np.zeros((n, n), np.int64) for k in logits}
    backends = {k: SensorOutputs(f"{k}.keras", meta, f"MCT {k}") for k in logits}
    segs = {k: Segmenter(b.path, metadata=meta, upsample="exact", backend=b) for k, b in backends.items()}
    agree = []
    for i, (image_path, label_path) in enumerate(items):
        image = read_image(Path(image_path))
        label, _ = read_label(Path(label_path), label_map)
        preds = []
        for kind, seg in segs.items():
            backends[kind].feed(logits[kind][i])
            preds.append(seg.predict(image))
            cms[kind] += metrics.confusion_matrix(label, preds[-1], n)
        if len(preds) > 1:
            agree.append(float(np.mean(preds[0] == preds[1])))
        if progress:
            progress(1)
    return cms, (float(np.mean(agree)) if agree else None)


def score_quantized_keras(path: Path, items, label_map, class_names, progress=None):
    """`edgeseg evaluate` of an IMX500 export's quantized model (``RUN_imx500.keras``, with the
    export's ``edgeseg.json`` beside it), run by MCT in Sony's environment: a
    :class:`~edgeseg.core.metrics.Score` like any model file's."""
    from edgeseg.core.errors import DataError
    from edgeseg.core.metrics import Score
    from edgeseg.quant.calibrate import load_calibration_frames
    from edgeseg.runtime.model.imx500 import read_sensor_metadata
    from edgeseg.runtime.model.scoring import describe_classes, same_classes

    meta = read_sensor_metadata(Path(path))
    if not same_classes(meta.class_names, class_names):
        raise DataError(f"{path} was trained on other classes than the dataset's: "
                        f"{describe_classes(meta.class_names)} vs {describe_classes(class_names)}")
    toolchain = find_toolchain()
    with tempfile.TemporaryDirectory(prefix="edgeseg-imx500-") as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "frames.npz", frames=_frames(items, meta.input_size, load_calibration_frames, None))
        spec = {"mode": "predict", "edgeseg_path": str(Path(__file__).resolve().parents[3]),
                "keras": str(Path(path).resolve()), "frames": str(tmp / "frames.npz"), "scale": meta.scale,
                "offset": meta.offset, "logits_out": str(tmp / "logits.npz"), "result_out": str(tmp / "result.json")}
        (tmp / "spec.json").write_text(json.dumps(spec))
        code, text, _ = _run_logged([toolchain.python, CONVERT_SCRIPT, tmp / "spec.json"], tmp / "mct.log",
                                    "running the MCT model")
        if code != 0 or not Path(spec["result_out"]).is_file():
            raise ExportError(f"running {Path(path).name} in the IMX500 environment failed: "
                              f"{failure_reason(text) or f'exit {code}'}")
        logits = np.load(spec["logits_out"])
        cms, _ = score_logits({"quantized": logits["quantized"]}, items, meta, label_map, progress)
    return Score(name=Path(path).name, kind="imx500", cm=cms["quantized"], class_names=list(class_names),
                 frames=len(items), path=str(path), bytes=Path(path).stat().st_size)
