"""`edgeseg export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli.common import VERBOSE_HELP, Format, Interp, choices, flags_phrase, handle_errors, setup_logging
from edgeseg.config import QAT_LR_FACTOR, QAT_STEPS
from edgeseg.export.formats import FILE_KINDS, EXPORT_FORMATS, IO_TYPES, TARGETS, with_files, with_labels_heads
from edgeseg.quant.calibrate import SELECTIONS

CALIB = "Calibration (int8)"
QAT = "Quantization-aware training"


Target = choices("Target", (*TARGETS, "imx500"))
IO = choices("IO", IO_TYPES)
Select = choices("Select", SELECTIONS)
FileKind = choices("FileKind", FILE_KINDS)
OnnxInt8 = choices("OnnxInt8", ("tflite", "ort"))


@handle_errors
def export(
    run: Annotated[Path, typer.Argument(help="Training run directory.")],
    int8: Annotated[bool, typer.Option("--int8", help="Add the full-integer PTQ model.")] = False,
    fp16: Annotated[bool, typer.Option("--fp16", help="Add the float16 model (GPU delegate).")] = False,
    qat: Annotated[bool, typer.Option("--qat", help="The QAT int8 model; fine-tunes first unless the run has QAT weights (edgeseg train --qat --from RUN).", rich_help_panel=QAT)] = False,
    formats: Annotated[Optional[str], typer.Option("--precisions", "--formats", help=f"Comma-separated: {','.join(EXPORT_FORMATS)} (overrides the flags; --formats: the old spelling).")] = None,
    target: Annotated[Target, typer.Option(help="Formats per device: " + ", ".join(f"{t}={'+'.join(f)}" for t, f in TARGETS.items()) + "; imx500 = the Raspberry Pi AI Camera's packerOut.zip, by Sony's toolchain (make imx500-env).")] = Target.cpu,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default RUN/export).")] = None,
    io: Annotated[Optional[IO], typer.Option(help="Input/output type of integer models (int8, qat) \\[default: int8].")] = None,
    calib_data: Annotated[Optional[Path], typer.Option(help="Dataset for calibration (default: the run's).", rich_help_panel=CALIB)] = None,
    calib_format: Annotated[Optional[Format], typer.Option(help="Its format (default: the run's, or detected for --calib-data).", rich_help_panel=CALIB)] = None,
    calib_size: Annotated[Optional[int], typer.Option(min=1, help="Calibration frames from the training split \\[default: 200].", rich_help_panel=CALIB)] = None,
    calib_select: Annotated[Optional[Select], typer.Option(help="balanced: rare classes represented \\[default: balanced].", rich_help_panel=CALIB)] = None,
    calib_manifest: Annotated[Optional[Path], typer.Option(help="Reuse the frames listed in a manifest.", rich_help_panel=CALIB)] = None,
    qat_steps: Annotated[Optional[int], typer.Option(min=0, help=f"QAT fine-tuning steps \\[default: {QAT_STEPS}]; saved QAT weights are reused only with the same steps and learning-rate factor.", rich_help_panel=QAT)] = None,
    qat_lr_factor: Annotated[Optional[float], typer.Option(min=0, help=f"QAT learning rate as a fraction of the float one \\[default: {QAT_LR_FACTOR}].", rich_help_panel=QAT)] = None,
    decoder_upsample: Annotated[Interp, typer.Option(help="Interpolation of the decoder's x4 upsample in the exported graph.")] = Interp.bilinear,
    debug: Annotated[bool, typer.Option("--debug", help="Per-layer int8 error (QuantizationDebugger); worst layers listed.")] = False,
    keep_float: Annotated[Optional[list[str]], typer.Option(help="Keep this tensor/node in float in the int8 model (repeatable; names from --debug).")] = None,
    file_format: Annotated[FileKind, typer.Option("--files", "--format", help="Model files: tflite, onnx (fp32 and int8 QDQ for ONNX Runtime / TensorRT) or both (--format: the old spelling; on train and data --format is a dataset's).")] = FileKind.tflite,
    labels_head: Annotated[bool, typer.Option("--labels-head", help="Also write each float file (fp32, fp16, fp32 ONNX) with the bilinear upsample and argmax in its graph: NAME_PRECISION_labels, uint8 class ids at the input size out (the runtime then only crops; docs/runtime.md says where it pays).")] = False,
    onnx_int8: Annotated[Optional[OnnxInt8], typer.Option(help="How int8 ONNX is made: from the int8 TFLite model (same quantization) or by ONNX Runtime's static quantization \\[default: tflite].")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
):
    """Write TFLite models (fp32 / fp16 / dynamic / int8 / QAT int8) with embedded metadata, a
    delegate compatibility report and parity checks. Exits non-zero when a parity check fails
    (the files and export.json are still written). Run again after an interruption (a full disk,
    a power cut), it makes only the files still missing: export.json records each one written.

    [bold]Examples[/bold]

      edgeseg export runs/camvid --int8
      edgeseg export runs/camvid --int8 --qat --io uint8
      edgeseg export runs/camvid --target gpu
      edgeseg export runs/camvid --files onnx --labels-head   # class ids out of the graph (TensorRT)
      edgeseg export runs/camvid --files onnx --int8       # for ONNX Runtime / TensorRT (Jetson)
      edgeseg export runs/imx --target imx500              # Raspberry Pi AI Camera (docs/imx500.md)
    """
    setup_logging(verbose)
    from edgeseg.core.errors import ConfigError, ExportError
    from edgeseg.export.exporter import ExportOptions, export_run, plan_export

    if target == Target.imx500:
        _refuse_for_imx500(int8=int8, fp16=fp16, qat=qat, precisions=formats is not None, io=io is not None,
                           qat_steps=qat_steps is not None, qat_lr_factor=qat_lr_factor is not None, debug=debug,
                           keep_float=bool(keep_float), files=file_format != FileKind.tflite,
                           onnx_int8=onnx_int8 is not None, decoder_upsample=decoder_upsample != Interp.bilinear,
                           labels_head=labels_head)
        if calib_manifest is not None and (calib_size is not None or calib_select is not None):
            raise ConfigError("--calib-manifest lists the frames; --calib-size/--calib-select do not apply with it")
        _export_imx500(run, ExportOptions(
            formats=(), out_dir=out, calib_data=calib_data, calib_format=calib_format.value if calib_format else None,
            calib_size=calib_size or 200, calib_select=(calib_select or Select.balanced).value,
            calib_manifest=calib_manifest, force=force))
        return

    if formats:
        chosen = tuple(f.strip() for f in formats.split(",") if f.strip())
    else:
        chosen = list(TARGETS[target.value])
        for flag, name in ((int8, "int8"), (fp16, "fp16"), (qat, "qat")):
            if flag and name not in chosen:
                chosen.append(name)
    unknown = [f for f in chosen if f not in EXPORT_FORMATS]
    if unknown:
        raise ConfigError(f"unknown export format '{unknown[0]}'; choose from: {', '.join(EXPORT_FORMATS)}")
    if labels_head:
        try:
            chosen = with_labels_heads(chosen)
        except ValueError as e:
            raise ConfigError(f"--labels-head: {e}") from None
    try:
        chosen = with_files(chosen, file_format.value)
    except ValueError as e:
        raise ConfigError(f"--files {file_format.value}: {e}; use --files both or leave it out") from None
    rows = [EXPORT_FORMATS[f] for f in chosen if f in EXPORT_FORMATS]
    calibrates = any(r.calibration for r in rows)
    unused = [flag for flag, given, applies in (
        ("--io", io is not None, any(r.integer_io for r in rows)),
        ("--qat-steps", qat_steps is not None, any(r.qat for r in rows)),
        ("--qat-lr-factor", qat_lr_factor is not None, any(r.qat for r in rows)),
        ("--onnx-int8", onnx_int8 is not None, any(r.file == "onnx" and r.calibration for r in rows)),
        ("--calib-data", calib_data is not None, calibrates),
        ("--calib-format", calib_format is not None, calibrates),
        ("--calib-size", calib_size is not None, calibrates),
        ("--calib-select", calib_select is not None, calibrates),
        ("--calib-manifest", calib_manifest is not None, calibrates),
    ) if given and not applies]
    if unused:
        raise ConfigError(f"{flags_phrase(unused, 'does', 'do')} nothing for the formats {', '.join(chosen)}")
    if calib_manifest is not None and (calib_size is not None or calib_select is not None):
        raise ConfigError("--calib-manifest lists the frames; --calib-size/--calib-select do not apply with it")
    options = ExportOptions(
        formats=chosen, out_dir=out, io=(io or IO.int8).value, calib_data=calib_data,
        calib_format=calib_format.value if calib_format else None, calib_size=calib_size or 200,
        calib_select=(calib_select or Select.balanced).value, calib_manifest=calib_manifest,
        decoder_interpolation=decoder_upsample.value, force=force, edgetpu=target == Target.edgetpu,
        debug=debug, keep_float=tuple(keep_float or ()), onnx_int8=(onnx_int8 or OnnxInt8.tflite).value,
    )
    plan = plan_export(run, options)  # every option and the --force check before any fine-tuning
    if any(EXPORT_FORMATS[f].qat for f in plan.pending):
        ensure_qat(run, qat_steps, qat_lr_factor, decoder_upsample.value)
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task("calibration frames", total=None)
        report = export_run(run, options, progress=lambda: progress.advance(task))
    print_report(report)
    if not report["ok"]:
        failed = [k for k, v in report["parity"].items() if isinstance(v, dict) and not v.get("ok", True)]
        raise ExportError(f"parity check failed for {', '.join(failed)}: see the table above and "
                          f"{Path(report['files'][failed[0]]['path']).parent / 'export.json'}")


def _refuse_for_imx500(**given) -> None:
    from edgeseg.core.errors import ConfigError

    flags = ["--" + name.replace("_", "-") for name, on in given.items() if on]
    if flags:
        raise ConfigError(f"--target imx500 writes Sony's files (MCT quantizes for the sensor); "
                          f"{flags_phrase(flags, 'does not apply', 'do not apply')}")


def _export_imx500(run: Path, options) -> None:
    from rich.progress import Progress

    from edgeseg.export.imx500.export import export_imx500

    with Progress(transient=True) as progress:
        task = progress.add_task("frames", total=None)
        report = export_imx500(run, options, progress=lambda: progress.advance(task))
    print_imx500_report(report)


def print_imx500_report(report: dict) -> None:
    files, memory = report["files"], report.get("memory", {})
    typer.echo(f"\n{report['verdict']['status']} (limits): {report['verdict']['reason']}")
    typer.echo(f"MCT: {report['mct']['seconds']:.0f}s (TensorFlow {report['mct']['tensorflow']}, MCT "
               f"{report['mct']['mct']}, TPC {report['mct']['tpc']}); imxconv-tf: {report['converter']['seconds']:.0f}s")
    if memory:
        typer.echo("memory report: " + ", ".join(f"{k} {v}" for k, v in memory.items() if k != "Name"))
    drop = report.get("parity", {}).get("imx500")
    if drop:
        typer.echo(f"\n{'model':<22} {'mIoU':>7}  on {drop['frames']} {drop['split']} frames")
        typer.echo(f"{'float (Keras, TF 2.15)':<22} {drop['miou_float']:>7.4f}")
        typer.echo(f"{'MCT int8 (IMX500)':<22} {drop['miou_quantized']:>7.4f}  drop {drop['drop_points']:.2f} points, "
                   f"{100 * drop['pixel_agreement']:.2f}% pixels = float")
    typer.echo("")
    for key in ("packer", "memory_report", "dnn_params", "labels", "metadata", "quantized"):
        typer.echo(f"  {key:<14} {files[key]}")
    c = report["calibration"]
    typer.echo(f"calibration: {c['frames']} frames ({c['select']}), manifest {c['manifest']}")
    typer.echo(f"next, on the Pi: imx500-package -i packerOut.zip -o DIR, copy {Path(files['metadata']).name} "
               f"into DIR, then edgeseg run DIR/network.rpk --camera csi")


def ensure_qat(run: Path, steps: int | None, lr_factor: float | None, decoder_upsample: str) -> None:
    """Fine-tune with QAT unless the run already has QAT weights newer than its float weights
    and made the way asked: the same decoder upsampling, and the same steps and learning-rate
    factor where those are given (``None``: whatever the saved weights used; the defaults when
    QAT has to run)."""
    from edgeseg.quant.qat import qat_finetune
    from edgeseg.rundir import RunDir

    rd = RunDir(run).require()
    saved = rd.read_json(rd.qat_json) if rd.qat_weights.is_file() else None
    if saved and rd.weights().stat().st_mtime > rd.qat_weights.stat().st_mtime:
        typer.echo(f"{rd.qat_weights} is older than the float weights; redoing QAT")
        saved = None
    wanted = {k: v for k, v in (("steps", steps), ("lr_factor", lr_factor),
                                 ("decoder_interpolation", decoder_upsample)) if v is not None}
    if saved:
        differ = [f"{k} {saved.get(k)} -> {v}" for k, v in wanted.items() if saved.get(k) != v]
        if not differ:
            typer.echo(f"using the QAT weights in {rd.qat_weights} ({saved['steps']} steps)")
            return
        typer.echo(f"{rd.qat_weights} was made with other settings ({'; '.join(differ)}); redoing QAT")
    qat_finetune(run, steps=QAT_STEPS if steps is None else steps,
                 lr_factor=QAT_LR_FACTOR if lr_factor is None else lr_factor, decoder_interpolation=decoder_upsample)


def print_report(report: dict) -> None:
    typer.echo(f"\n{'format':<10} {'MB':>7}  {'parity':<62} file")
    for name, info in report["files"].items():
        parity = report["parity"].get(name, {})
        if "pixel_agreement_vs_logits" in parity:
            check = (f"{100 * parity['pixel_agreement_vs_logits']:.3f}% pixels = {parity['logits_file']} "
                     f"(its logits, through the runtime)")
        elif "max_abs_diff_vs_keras" in parity:
            check = (f"max|diff| {parity['max_abs_diff_vs_keras']:.2e}, "
                     f"{100 * parity['pipeline_agreement_min']:.2f}% = Keras (worst frame)")
        elif "pixel_agreement_vs_fp32" in parity:
            check = f"{100 * parity['pixel_agreement_vs_fp32']:.2f}% pixels = fp32"
            if "pixel_agreement_vs_tflite" in parity:
                check += f", {100 * parity['pixel_agreement_vs_tflite']:.2f}% = TFLite"
            flips = [parity[k] for k in ("clear_flips", "clear_flips_vs_tflite") if k in parity]
            if flips:
                check += f"; clear flips {100 * max(flips):.2f}%"
        else:
            check = "-"
        flag = "" if parity.get("ok", True) else "  FAILED"
        typer.echo(f"{name:<10} {info['bytes'] / 1e6:>7.2f}  {check + flag:<62} {info['path']}")
    reference = report["parity"].get("fp32_reference")
    if reference:
        flag = "" if reference.get("ok", True) else "  FAILED"
        typer.echo(f"(judged against a temporary fp32 conversion, not written: max|diff| vs Keras "
                   f"{reference['max_abs_diff_vs_keras']:.2e}{flag})")
    typer.echo("\nops a delegate cannot run (they fall back to the CPU), from edgeseg's allow-lists:")
    first = next((f for f in report["files"].values() if f["path"].endswith(".tflite")), None)
    edgetpu = report.get("edgetpu")
    for delegate, ops in (first["unsupported"] if first else {}).items():
        listed = ", ".join(f"{k} x{v}" for k, v in ops.items()) or "none"
        if delegate == "gpu":
            probe = first.get("gpu_accelerator") or {}
            listed += (f"; LiteRT's GPU accelerator here ({probe['backend']} on {probe['adapter']}): "
                       f"{'the whole graph' if probe['fully_accelerated'] else 'part of the graph'} on the GPU"
                       if probe.get("available") else
                       f"; no GPU accelerator here to ask ({probe.get('why', 'not probed')})")
        if delegate == "edgetpu":
            count = lambda key: "?" if edgetpu.get(key) is None else edgetpu[key]  # noqa: E731
            listed += ("; compiled: " + f"{count('ops_on_edgetpu')} ops on the Edge TPU, {count('ops_on_cpu')} on "
                       f"the CPU ({edgetpu['path']})" if edgetpu and edgetpu.get("compiled") else
                       " (runs on the Edge TPU only once edgetpu_compiler has compiled the int8 file)")
        typer.echo(f"  {delegate:<8} {listed}")
    if edgetpu and not edgetpu.get("compiled"):
        typer.echo(f"\nEdge TPU: {edgetpu['why']}")
    if "calibration" in report:
        c = report["calibration"]
        typer.echo(f"\ncalibration: {c['frames']} frames ({c['select']}), manifest {c['manifest']}")
    if "int8_debug" in report:
        typer.echo(f"\nworst int8 layers (RMSE / scale), all in {report['int8_debug']['csv']}:")
        for row in report["int8_debug"]["worst"][:8]:
            typer.echo(f"  {row['rmse_over_scale']:8.3f}  {row['op']:<18} {row['tensor'][:90]}")
