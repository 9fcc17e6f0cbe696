"""`edgeseg export`: a trained run -> .tflite and .onnx files with metadata, a delegate report
and parity checks, written atomically. ``export.json`` is rewritten after each file: an export
stopped half-way is completed by running it again (:mod:`edgeseg.export.record`)."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path


from edgeseg import __version__
from edgeseg.config import TrainConfig
from edgeseg.core.files import sweep_temporaries, write_bytes_atomic
from edgeseg.data import label_map_of, load_split
from edgeseg.data.base import names_frame
from edgeseg.core.errors import ConfigError, ExportError
from edgeseg.export.delegates import compatibility_report
from edgeseg.export.edgetpu import compile_for_edgetpu, edgetpu_path
from edgeseg.export.record import file_settings, finished_files, previous_report
from edgeseg.export.metadata import embed_metadata
from edgeseg.export.formats import DEFAULT_LABELS_HEAD, EXPORT_FORMATS, LABELS_HEADS
from edgeseg.export.tflite import convert
from edgeseg.models import get_backbone
from edgeseg.quant.calibrate import (
    check_calibration_size, load_calibration_frames, read_manifest, select_frames, write_manifest,
)
from edgeseg.rundir import RunDir, write_json_atomic
from edgeseg.core.metadata import ModelMetadata
from edgeseg.export.parity import check_parity, parity_items_of

log = logging.getLogger("edgeseg")



@dataclass
class ExportOptions:
    formats: tuple[str, ...] = ("fp32", "int8")
    out_dir: Path | None = None
    io: str = "int8"
    calib_data: Path | None = None
    calib_format: str | None = None
    calib_split: str = "train"
    calib_size: int = 200
    calib_select: str = "balanced"
    calib_manifest: Path | None = None
    manifest_dir: Path | None = None  # default: the output folder
    parity_frames: int = 8
    decoder_interpolation: str = "bilinear"
    debug: bool = False
    keep_float: tuple[str, ...] = ()
    onnx_int8: str = "tflite"  # how int8 ONNX is made: from the int8 TFLite model, or "ort"
    edgetpu: bool = False  # compile the int8 file with edgetpu_compiler (or say what it still needs)
    labels_head: str = DEFAULT_LABELS_HEAD  # how the labels head takes the argmax (edgeseg.export.labels_head)
    force: bool = False
    seed: int = 0


@dataclass(frozen=True)
class ExportPlan:
    """What an export will write, checked before any work (conversion, QAT fine-tuning)."""

    run: RunDir
    config: TrainConfig
    dataset: dict  # the run's dataset.json
    out_dir: Path
    targets: dict  # format -> output path
    finished: dict  # format -> its export.json row: made by an earlier export of this run as asked now
    previous: dict  # that export.json ({} when there is none)

    @property
    def pending(self) -> list[str]:
        """The formats still to make, in the order asked."""
        return [name for name in self.targets if name not in self.finished]


def plan_export(run_dir: Path, options: ExportOptions) -> ExportPlan:
    """Validate ``options`` against the run and the output folder: unknown formats, options that
    do nothing for the chosen formats, files that exist without ``force``, an unwritable folder.
    Nothing is written but the output folder itself."""
    run = RunDir(Path(run_dir)).require()
    unknown = [f for f in options.formats if f not in EXPORT_FORMATS]
    if unknown:
        raise ConfigError(f"unknown export format '{unknown[0]}'; choose from: {', '.join(EXPORT_FORMATS)}")
    if not options.formats:
        raise ConfigError("no export format chosen")
    rows = [EXPORT_FORMATS[f] for f in options.formats]
    if options.keep_float and "int8" not in options.formats:
        raise ConfigError("--keep-float applies to the int8 (PTQ) model, which is not among the formats")
    if options.debug and "int8" not in options.formats:
        raise ConfigError("--debug measures the int8 (PTQ) model, which is not among the formats")
    if options.onnx_int8 not in ("tflite", "ort"):
        raise ConfigError(f"ONNX int8 converter must be tflite or ort, got '{options.onnx_int8}'")
    if options.labels_head not in LABELS_HEADS:
        raise ConfigError(f"labels head must be one of {', '.join(LABELS_HEADS)}, got '{options.labels_head}'")
    if options.calib_size < 1:
        raise ConfigError(f"--calib-size must be >= 1, got {options.calib_size}")
    out_dir = Path(options.out_dir or run.path / "export")
    stem = run.path.name
    targets = {r.name: out_dir / f"{stem}{r.suffix}" for r in rows}
    compiled = [edgetpu_path(targets["int8"])] if options.edgetpu and "int8" in targets else []
    record = out_dir / "export.json"
    _prepare_out_dir(out_dir)
    # what a killed export left under a temporary name: its own files' names only
    ours = {p.name for p in (*targets.values(), *compiled, record)}
    sweep_temporaries(out_dir, lambda name: name in ours or name == "int8_layer_errors.csv")
    previous = None if options.force else previous_report(record, run)
    finished = finished_files(previous, targets, run, options) if previous else {}
    if previous is None and record.exists() and not options.force:
        raise ExportError(f"{record} exists and is not this run's export record; pass --force to overwrite")
    existing = [p for n, p in targets.items() if p.exists() and n not in finished]
    existing += [p for p in compiled if p.exists() and "int8" not in finished]
    if existing and not options.force:
        raise ExportError(f"{existing[0]} exists; pass --force to overwrite")
    return ExportPlan(run, TrainConfig.load(run.config), json.loads(run.dataset.read_text()), out_dir, targets,
                      finished, previous or {})


def _prepare_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out_dir, prefix=".probe-")
        probe.close()
    except OSError as e:
        raise ExportError(f"output folder {out_dir} is not writable: {e.strerror}") from None


def export_run(run_dir: Path, options: ExportOptions, progress=None) -> dict:
    """Export a training run; returns the report also written to ``export.json``. A failed parity
    check is in the report (``parity[FORMAT]["ok"]``, ``ok``); the files are written anyway.
    ``export.json`` is rewritten after each file; files an earlier, interrupted export of the
    same run and settings finished are kept (see the module's docstring)."""
    from edgeseg.models import load_run_model

    plan = plan_export(run_dir, options)
    run, config, out_dir = plan.run, plan.config, plan.out_dir
    pending = plan.pending
    if plan.finished:
        log.info("keeping %s: finished by an earlier export with the same settings (%s)",
                 ", ".join(p.name for n, p in plan.targets.items() if n in plan.finished), out_dir / "export.json")
    size = tuple(config.data.eval_size)
    model, _ = load_run_model(run.path, size, final_upsample=False,
                              decoder_interpolation=options.decoder_interpolation)
    qat_model = None
    if any(EXPORT_FORMATS[f].qat for f in pending):
        from edgeseg.quant.qat import load_qat_model

        qat_model = load_qat_model(run.path, size, options.decoder_interpolation)
    report: dict = {"run": str(run.path), "input_size": list(size), "files": {}, "edgeseg": __version__,
                    "complete": False}
    root, fmt = _data_source(plan, options)
    parity_root, parity_fmt = (root, fmt) if options.calib_data is not None else config.data.val_data(root, fmt)
    parity_items = parity_items_of(parity_root, parity_fmt, config.data.val_split, options.parity_frames, report)
    calib = None
    calibrated = [f for f in options.formats if EXPORT_FORMATS[f].calibration]
    if calibrated and (any(f in pending for f in calibrated) or not parity_items):
        calib_items, manifest = _calibration_items(root, fmt, options, plan.dataset, out_dir,
                                                   _held_out(config, plan.dataset, root))
        check_calibration_size(len(calib_items))
        if any(f in pending for f in calibrated):
            calib = load_calibration_frames(calib_items, size, progress=progress)
        report["calibration"] = {"frames": len(calib if calib is not None else calib_items), "manifest": str(manifest),
                                 "select": options.calib_select}
        if not parity_items:
            parity_items = calib_items[: options.parity_frames]
            report["parity_frames"].update(split=options.calib_split + " (calibration frames)",
                                           frames=len(parity_items))
    elif "calibration" in plan.previous:
        report["calibration"] = plan.previous["calibration"]
    metadata = _metadata_for(plan, options, size)
    record = out_dir / "export.json"
    report["files"] = dict(plan.finished)  # in every record written: a rerun keeps them too
    for name in pending:
        t0 = time.perf_counter()
        data = _convert(EXPORT_FORMATS[name], model, qat_model, calib, options)
        report["files"][name] = {**_write(EXPORT_FORMATS[name], data, metadata(name), plan.targets[name], t0),
                                 "settings": file_settings(run, options, name)}
        write_json_atomic(record, report)  # what is done so far: a rerun goes on from here
    report["files"] = {name: report["files"][name] for name in options.formats}
    written = {name: plan.targets[name] for name in options.formats}
    if options.debug and calib:
        from edgeseg.export.debug import layer_errors, write_csv

        rows = layer_errors(model, calib)
        report["int8_debug"] = {"csv": str(write_csv(rows, out_dir / "int8_layer_errors.csv")), "worst": rows[:10]}
    elif options.debug and "int8_debug" in plan.previous:
        report["int8_debug"] = plan.previous["int8_debug"]
    if options.edgetpu:
        reuse = plan.previous.get("edgetpu")
        report["edgetpu"] = reuse if ("int8" in plan.finished and isinstance(reuse, dict)
                                      and (not reuse.get("compiled") or Path(reuse["path"]).is_file())) else \
            compile_for_edgetpu(written.get("int8"), out_dir)
    report["parity"] = check_parity(model, written, [image for image, _ in parity_items], metadata)
    report["ok"] = all(v.get("ok", True) for v in report["parity"].values() if isinstance(v, dict))
    report["complete"] = True
    write_json_atomic(record, report)
    return report


def _data_source(plan: ExportPlan, options: ExportOptions):
    """Where calibration and parity frames come from: ``--calib-data`` or the run's dataset."""
    from edgeseg.data import resolve_format

    if options.calib_data is not None:
        return options.calib_data, resolve_format(options.calib_data, options.calib_format)
    return plan.dataset.get("root"), options.calib_format or plan.dataset["format"]


def _metadata_for(plan: ExportPlan, options: ExportOptions, size):
    """``metadata(format name) -> ModelMetadata``: what each exported file carries."""
    meta_ds, spec = plan.dataset, get_backbone(plan.config.model.backbone)
    best = plan.run.read_json(plan.run.best_json)
    labels = ModelMetadata.label_fields(label_map_of(meta_ds["format"], len(meta_ds["class_names"]), meta_ds))

    def metadata(name: str) -> ModelMetadata:
        row = EXPORT_FORMATS[name]
        return ModelMetadata(
            class_names=meta_ds["class_names"], colors=meta_ds["colors"], input_size=list(size),
            output=row.head, output_stride=1 if row.labels_of else 4, scale=list(spec.scale), offset=list(spec.offset),
            precision=name, source_run=str(plan.run.path), float_miou=best.get("miou"),
            dataset=meta_ds.get("name"), edgeseg_version=__version__, **labels,
            extra={"io": options.io if row.integer_io else "float",
                   "decoder_interpolation": options.decoder_interpolation,
                   **({"onnx_int8": options.onnx_int8} if row.file == "onnx" and row.calibration else {}),
                   **({"labels_head": options.labels_head} if row.labels_of else {})},
        )
    return metadata


def _write(row, data: bytes, meta: ModelMetadata, target: Path, t0: float) -> dict:
    """The file with its metadata, written atomically; its report row (ops, what the delegates and
    this machine's GPU accelerator say)."""
    if row.file == "onnx":
        from edgeseg.export.onnx import embed_onnx_metadata, onnx_ops

        data, ops = embed_onnx_metadata(data, meta), {"ops": onnx_ops(data), "unsupported": {}}
    else:
        data = embed_metadata(data, meta)
        ops = compatibility_report(data)
    write_bytes_atomic(target, data)
    if row.file == "tflite":  # the allow-lists say what a GPU should take; ask this machine's
        from edgeseg.runtime.model.litert_gpu import probe_gpu_isolated

        ops["gpu_accelerator"] = probe_gpu_isolated(target)
    log.info("wrote %s (%.1f MB)", target, len(data) / 1e6)
    return {"path": str(target), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "seconds": round(time.perf_counter() - t0, 1), "description": row.description, **ops}


def _convert(row, model, qat_model, calib, options: ExportOptions) -> bytes:
    """One format's bytes: TFLite from the Keras (or QAT) model; ONNX fp32 from the Keras model,
    ONNX int8 from the int8 TFLite model made for float input and output (same quantization as
    the TFLite row) or, with ``onnx_int8='ort'``, by ONNX Runtime's static quantization."""
    source = qat_model if row.qat else model
    head = None
    if row.labels_of:
        from functools import partial

        from edgeseg.export.labels_head import labels_head

        head = partial(labels_head, formulation=options.labels_head)
    if row.file == "onnx":
        from edgeseg.export import onnx

        if not row.calibration:
            return onnx.keras_to_onnx(model, head)
        if options.onnx_int8 == "ort" and not row.qat:
            return onnx.ort_static_int8(onnx.keras_to_onnx(model), calib)
        return onnx.tflite_to_onnx(convert(source, EXPORT_FORMATS[row.base], calib, "float"))
    if row.name == "int8" and options.keep_float:
        from edgeseg.export.debug import convert_keeping_float

        return convert_keeping_float(model, calib, options.keep_float, options.io)
    return convert(source, row, calib, options.io, head)


def _held_out(config: TrainConfig, meta_ds: dict, root) -> str | None:
    """The run's ``--holdout`` glob when calibration draws on the run's own dataset, else None: the
    frames of any calibration split whose names match it are left out."""
    d, trained = config.data, meta_ds.get("root")
    same = root is not None and trained is not None and Path(root).resolve() == Path(trained).resolve()
    return d.holdout if d.holdout and same else None


def _calibration_items(root, fmt, options: ExportOptions, meta_ds, out_dir: Path, holdout: str | None):
    """Calibration frames (and their manifest); never the frames the run held out of training."""
    split = load_split(root, fmt, options.calib_split)
    held = lambda item: bool(holdout) and names_frame(holdout, item[0])  # noqa: E731
    if options.calib_manifest:
        items = read_manifest(Path(options.calib_manifest), split.root)
        if any(map(held, items)):
            raise ConfigError(f"--calib-manifest {options.calib_manifest}: lists frames the run held out of "
                              f"training ({holdout}); calibrate on frames it trained on")
        return items, options.calib_manifest
    if holdout:
        split = replace(split, items=[item for item in split.items if not held(item)])
    items = select_frames(split, options.calib_size, options.calib_select, options.seed)
    name = f"{meta_ds.get('name', fmt)}_{options.calib_split}_{options.calib_select}_{len(items)}.txt"
    folder = Path(options.manifest_dir) if options.manifest_dir else out_dir
    manifest = write_manifest(folder / name, split, items, options.calib_select, options.seed)
    return items, manifest
