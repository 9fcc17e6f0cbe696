"""Export: TFLite files, metadata, delegate report, parity, atomic/no-overwrite, QAT, and the
TF-free runtime that reads them."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, error_lines, make_voc, run_edgeseg
from edgeseg.core.errors import ConfigError, DataError, ExportError


def test_files_metadata_and_sizes(exported, run_dir):
    from edgeseg.runtime.model.metadata import load_metadata

    files = exported["files"]
    assert set(files) == {"fp32", "fp16", "int8"}
    meta = load_metadata(files["int8"]["path"])
    assert meta.class_names[:2] == ["sky", "building"] and meta.input_size == [64, 64]
    assert meta.precision == "int8" and meta.output == "logits" and meta.source_run == str(run_dir)
    assert meta.float_miou == pytest.approx(json.loads((run_dir / "best.json").read_text())["miou"])
    assert files["int8"]["bytes"] < 0.45 * files["fp32"]["bytes"]
    assert files["fp16"]["bytes"] < 0.6 * files["fp32"]["bytes"]
    assert json.loads((run_dir / "export" / "export.json").read_text())["files"].keys() == files.keys()


def test_parity_checks_pass(exported):
    parity = exported["parity"]
    assert parity["fp32"]["ok"] and parity["fp32"]["max_abs_diff_vs_keras"] < 1e-4
    assert parity["int8"]["pixel_agreement_vs_fp32"] > 0.8 and parity["int8"]["ok"]
    assert parity["int8"]["clear_flips"] <= 0.02 and parity["int8"]["max_logit_diff_steps"] > 0
    assert parity["fp16"]["pixel_agreement_vs_fp32"] > 0.98


def test_parity_tells_near_ties_from_clear_flips():
    """Class flips where the reference's two best classes are within a few output steps are
    rounding; a flip where the reference's choice was clear fails the file."""
    from edgeseg.export.parity import TIE_STEPS, _flips

    rng = np.random.default_rng(0)
    reference = rng.normal(0, 3, (2, 16, 16, 5)).astype(np.float32)
    reference[..., 1] = reference[..., 0] + 0.1 * rng.integers(-2, 3, (2, 16, 16))  # near-ties everywhere
    rounded = reference + 0.1 * rng.integers(-2, 3, reference.shape)  # 2 steps of rounding
    tied = _flips(list(reference), list(rounded), 0.1, ("int8", "fp32"), 0.001)  # an output step of 0.1
    assert tied["ok"] and tied["clear_flips"] == 0.0 and tied["max_logit_diff_steps"] == pytest.approx(2, abs=1e-3)
    assert (reference.argmax(-1) != rounded.argmax(-1)).mean() > 0.05  # many pixels flipped, all near-ties
    broken = rounded.copy()
    broken[:, :4, :, 4] += 0.1 * (TIE_STEPS + 40)  # a quarter of the frame wins a class it should not
    clear = _flips(list(reference), list(broken), 0.1, ("int8", "fp32"), 0.02)
    assert not clear["ok"] and 0.05 < clear["clear_flips"] <= 0.25


def test_graph_ops_fixed_batch_and_delegate_report(exported):
    ops = exported["files"]["int8"]["ops"]
    assert "SPACE_TO_BATCH_ND" not in ops and "BATCH_TO_SPACE_ND" not in ops  # dilation folded
    assert "ARG_MAX" not in ops  # argmax is the runtime's job
    assert ops["CONV_2D"] > 10 and ops["DEPTHWISE_CONV_2D"] > 10
    assert exported["files"]["int8"]["unsupported"]["gpu"] == {}
    # the real accelerator was asked too; this machine has no Vulkan adapter (tests/boards/prove_gpu.py has one)
    probe = exported["files"]["int8"]["gpu_accelerator"]
    assert probe["available"] is False and "Vulkan" in probe["why"]
    from edgeseg.export.delegates import unsupported_ops

    assert unsupported_ops({"ARG_MAX": 1, "CONV_2D": 3}, "gpu") == {"ARG_MAX": 1}
    assert unsupported_ops({"ARG_MAX": 1, "CONV_2D": 3}, "nnapi") == {}


def test_int8_takes_raw_pixels(exported):
    from edgeseg.runtime.model.segmenter import Segmenter

    seg = Segmenter(exported["files"]["int8"]["path"])
    scale, zero = seg.input.quantization
    assert seg.input.dtype == np.int8 and scale == pytest.approx(1.0, rel=0.02) and zero == -128


def test_existing_files_are_not_overwritten(run_dir, tmp_path):
    """A file of an export's name that its record does not list (the user's, or made with other
    settings) needs --force; the files an export of the same settings finished are kept (see
    test_field.py for a rerun after a full disk)."""
    from edgeseg.export.exporter import ExportOptions, export_run

    out = tmp_path / "models"
    out.mkdir()
    (out / "tiny_fp32.tflite").write_bytes(b"mine")
    with pytest.raises(ExportError, match="tiny_fp32.tflite exists; pass --force"):
        export_run(run_dir, ExportOptions(formats=("fp32",), out_dir=out))
    (out / "export.json").write_text('{"run": "/another/run", "files": {}}')
    (out / "tiny_fp32.tflite").unlink()
    with pytest.raises(ExportError, match="export.json exists and is not this run's export record; pass --force"):
        export_run(run_dir, ExportOptions(formats=("fp32",), out_dir=out))
    assert (out / "export.json").read_text() == '{"run": "/another/run", "files": {}}'


def test_unwritable_output_leaves_nothing(run_dir, tmp_path):
    from edgeseg.export.exporter import ExportOptions, export_run

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="not writable"):
        export_run(run_dir, ExportOptions(formats=("fp32",), out_dir=blocker / "out"))


def test_calibration_problems(run_dir, tmp_path, synth_root):

    from edgeseg.export.exporter import ExportOptions, export_run

    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(DataError, match="lists no frames"):
        export_run(run_dir, ExportOptions(formats=("int8",), out_dir=tmp_path / "a", calib_manifest=empty))
    with pytest.raises(ConfigError, match="unknown export format 'onnx'"):
        export_run(run_dir, ExportOptions(formats=("onnx",), out_dir=tmp_path / "c"))


def test_manifest_reproduces_the_int8_model(run_dir, exported, tmp_path):
    from edgeseg.export.exporter import ExportOptions, export_run

    manifest = Path(exported["calibration"]["manifest"])
    assert len([l for l in manifest.read_text().splitlines() if not l.startswith("#")]) == 12
    again = export_run(run_dir, ExportOptions(formats=("int8",), out_dir=tmp_path, calib_manifest=manifest))
    first = Path(exported["files"]["int8"]["path"]).read_bytes()
    assert Path(again["files"]["int8"]["path"]).read_bytes() == first


def test_cli_train_qat_from_run_then_export_reuses_it_at_the_export_size(run_dir, tmp_path):
    """`train --qat --from RUN` saves QAT weights in the run; they load at the export size (and
    only with the decoder upsampling they were trained with); `export` reuses them."""
    from edgeseg.core.errors import ExportError
    from edgeseg.quant.qat import load_qat_model

    result = run_edgeseg("train", "--qat", "--from", run_dir, "--qat-steps", "3", "--batch-size", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "val mIoU with fake quantization" in result.stdout
    assert json.loads((run_dir / "qat.json").read_text())["steps"] == 3 and (run_dir / "qat.npz").is_file()
    qat = load_qat_model(run_dir)
    assert any(type(l).__name__ == "QuantizeWrapperV2" for l in qat.layers)
    with pytest.raises(ExportError, match="bilinear decoder upsampling"):
        load_qat_model(run_dir, decoder_interpolation="nearest")
    out = tmp_path / "models"
    result = run_edgeseg("export", run_dir, "--formats", "fp32,qat", "--out", out, "--calib-size", "4")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "using the QAT weights" in result.stdout and (out / "tiny_qat_int8.tflite").is_file()
    report = json.loads((out / "export.json").read_text())
    assert report["files"]["qat"]["bytes"] < 0.45 * report["files"]["fp32"]["bytes"]
    assert report["parity"]["qat"]["pixel_agreement_vs_fp32"] > 0.8 and report["parity"]["qat"]["ok"]
    for args, message in ((("--qat",), "needs both --qat and --from"),
                          (("--qat", "--from", run_dir, "--epochs", "3"), "--epochs does not apply")):
        bad = run_edgeseg("train", *args)
        assert bad.returncode != 0 and message in error_lines(bad.stderr)[0]


def test_runtime_imports_no_tensorflow():
    code = ("import sys; import edgeseg.runtime.model.segmenter, edgeseg.runtime.model.scoring, edgeseg.runtime.model.metadata, "
            "edgeseg.core.metrics, edgeseg.data, edgeseg.data.base; bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_runtime_rejects_bad_files(tmp_path, exported):
    from edgeseg.core.metadata import MetadataError
    from edgeseg.runtime.model.metadata import load_metadata

    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(MetadataError, match="not a TFLite model"):
        load_metadata(junk)


def test_cli_export_then_drop_table(run_dir, synth_root, tmp_path):
    out = tmp_path / "models"
    result = run_edgeseg("export", run_dir, "--int8", "--out", out, "--calib-size", "8")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ops a delegate cannot run" in result.stdout
    md = tmp_path / "drop.md"
    result = run_edgeseg("evaluate", run_dir, out / "tiny_fp32.tflite", out / "tiny_int8.tflite",
                         "--markdown", md, "--chart", tmp_path / "iou.png", "--json", tmp_path / "m.json")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((tmp_path / "m.json").read_text())["models"]
    assert [r["kind"] for r in rows] == ["keras", "fp32", "int8"]
    assert abs(rows[1]["drop_points"]) < 0.5  # fp32 TFLite matches Keras
    assert "| tiny_int8.tflite | int8 |" in md.read_text()
    some = run_edgeseg("evaluate", run_dir, out / "tiny_int8.tflite", "--frames", "*[02468]", "--json", tmp_path / "f.json")
    assert some.returncode == 0, some.stderr[-2000:]
    picked = json.loads((tmp_path / "f.json").read_text())
    assert picked["frames_glob"] == "*[02468]"
    assert [0 < r["frames"] < full["frames"] for r, full in zip(picked["models"], rows[::2])] == [True, True]
    none = run_edgeseg("evaluate", out / "tiny_int8.tflite", "--data", synth_root, "--frames", "nothing*")
    assert none.returncode != 0 and "--frames 'nothing*' matches no frame" in error_lines(none.stderr)[0]
    again = run_edgeseg("export", run_dir, "--int8", "--out", out)
    assert again.returncode != 0 and "exists; pass --force" in error_lines(again.stderr)[0]


def test_debug_lists_worst_layers_and_keep_float_leaves_them_in_float(run_dir, tmp_path):
    from edgeseg.export.exporter import ExportOptions, export_run

    report = export_run(run_dir, ExportOptions(formats=("int8",), out_dir=tmp_path / "d", calib_size=4,
                                               manifest_dir=tmp_path, debug=True))
    worst = report["int8_debug"]["worst"]
    assert worst and worst[0]["rmse_over_scale"] >= worst[-1]["rmse_over_scale"]
    assert Path(report["int8_debug"]["csv"]).is_file()
    name = next(r["tensor"] for r in worst if "block_" in r["tensor"])
    kept = export_run(run_dir, ExportOptions(formats=("int8",), out_dir=tmp_path / "k", calib_size=4,
                                             manifest_dir=tmp_path, keep_float=(name,)))
    ops = kept["files"]["int8"]["ops"]
    assert ops.get("DEQUANTIZE", 0) >= 1 and ops.get("QUANTIZE", 0) >= 1  # a float island in the graph


def test_qat_ranges_start_from_the_float_model(run_dir, synth_root):
    from edgeseg.quant.ranges import init_quantizer_ranges
    from edgeseg.quant.scheme import quantize_model
    from edgeseg.models import load_run_model

    model, _ = load_run_model(run_dir, (64, 64))
    qat = quantize_model(model)
    frames = [np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)]
    assert init_quantizer_ranges(qat, model, frames) > 20
    quantize_input = next(l for l in qat.layers if type(l).__name__ == "QuantizeLayer")
    ranges = {v.name.split("/")[-1].split(":")[0][-4:]: float(v.numpy()) for v in quantize_input.weights}
    assert ranges["_min"] == 0.0 and ranges["_max"] == 255.0
    ranges = {v.name.split("/")[-1].split(":")[0]: float(v.numpy()) for v in qat.get_layer("quant_classifier").weights
              if "post_activation" in v.name}
    from edgeseg._tf import keras

    logits = keras.Model(model.input, model.get_layer("classifier").output)(frames[0], training=False).numpy()
    assert ranges["post_activation_max"] == pytest.approx(max(float(logits.max()), 0.0), rel=1e-5)
    assert ranges["post_activation_min"] == pytest.approx(min(float(logits.min()), 0.0), rel=1e-5)


def test_qat_model_computes_the_float_model_before_fine_tuning(run_dir):
    """Fake quantization must only add rounding noise: same wiring (tfmot's concat transforms
    reorder ASPP's inputs, tensorflow/model-optimization#1061) and weight ranges that fit."""
    from edgeseg.quant.ranges import init_quantizer_ranges
    from edgeseg.quant.scheme import quantize_model
    from edgeseg.models import load_run_model

    model, _ = load_run_model(run_dir, (64, 64), final_upsample=False)
    qat = quantize_model(model)

    def concat_inputs(m):
        return [getattr(x, "layer", x).name
                for x in m.get_layer(next(l.name for l in m.layers if l.name.endswith("aspp_concat")))
                .inbound_nodes[0].inbound_layers]

    assert concat_inputs(qat) == concat_inputs(model)
    depthwise = qat.get_layer("quant_expanded_conv_depthwise")
    ranges = [v for v in depthwise.weights if v.name.split("/")[-1].startswith("depthwise_kernel_min")]
    assert ranges and ranges[0].shape == (depthwise.layer.depthwise_kernel.shape[2],)  # per channel (tfmot#808)
    frames = np.random.default_rng(1).uniform(0, 255, (4, 64, 64, 3)).astype(np.float32)
    init_quantizer_ranges(qat, model, [frames])
    want = model(frames, training=False).numpy()
    got = qat(frames, training=False).numpy()
    assert np.abs(got - want).mean() < 0.1 * np.abs(want).mean()
    assert (got.argmax(-1) == want.argmax(-1)).mean() > 0.9


def test_voc_frames_of_different_sizes_export_to_int8(tmp_path):
    """Pascal VOC frames differ in size: calibration letterboxes them like the runtime does."""
    from edgeseg.config import TrainConfig
    from edgeseg.export.exporter import ExportOptions, export_run
    from edgeseg.train import train

    root = make_voc(tmp_path / "voc", {"train": [(40, 56), (56, 40), (48, 64), (32, 72)],
                                       "val": [(48, 64), (40, 48)]})
    run = tmp_path / "run"
    cfg = TrainConfig().override(
        data__root=str(root), data__crop_size=[32, 32], data__batch_size=2, model__alpha=0.35,
        model__aspp_filters=16, model__decoder_filters=16, optim__epochs=1, optim__steps_per_epoch=2)
    train(cfg, run, verbose=0)
    assert TrainConfig.load(run / "config.yaml").data.format == "voc"  # detected
    report = export_run(run, ExportOptions(formats=("fp32", "int8"), calib_size=4))
    assert report["calibration"]["frames"] == 4
    assert Path(report["files"]["int8"]["path"]).stat().st_size > 0
    assert report["parity_frames"] == {"split": "val", "frames": 2}
    assert report["parity"]["fp32"]["ok"]


def test_onnx_export_matches_tflite_and_runs_everywhere(run_dir, onnx_export, video, tmp_path):
    """`edgeseg export RUN --format both --int8`: ONNX fp32 masks equal the TFLite fp32 masks on
    the clip; int8 ONNX (QDQ from the int8 TFLite model) flips no class that int8 TFLite chose
    clearly; `edgeseg run` takes .onnx and compares it live with a .tflite."""
    import cv2

    out = onnx_export
    report = json.loads((out / "export.json").read_text())
    assert set(report["files"]) == {"fp32", "onnx_fp32", "int8", "onnx_int8"}
    from edgeseg.export.parity import TIE_STEPS

    onnx_int8 = report["parity"]["onnx_int8"]
    assert onnx_int8["ok"] and onnx_int8["clear_flips_vs_tflite"] == 0.0, onnx_int8
    assert onnx_int8["max_logit_diff_steps_vs_tflite"] < TIE_STEPS  # rounding, not a wrong op
    assert "DequantizeLinear" in report["files"]["onnx_int8"]["ops"]  # QDQ
    from edgeseg.runtime.model.metadata import load_metadata

    meta = load_metadata(out / "tiny_int8.onnx")
    assert meta.precision == "onnx_int8" and meta.class_names[:2] == ["sky", "building"]
    masks = {}
    for name in ("tiny_fp32.tflite", "tiny_fp32.onnx", "tiny_int8.tflite", "tiny_int8.onnx"):
        folder = tmp_path / name
        result = run_edgeseg("run", out / name, "--source", video, "--save-masks", folder, "--threads", "2")
        assert result.returncode == 0, result.stderr[-2000:]
        masks[name] = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob("*.png"))]
    assert len(masks["tiny_fp32.onnx"]) == 8
    assert all(np.array_equal(a, b) for a, b in zip(masks["tiny_fp32.onnx"], masks["tiny_fp32.tflite"]))
    from edgeseg.runtime.model.segmenter import Segmenter

    capture, in_process = cv2.VideoCapture(str(video)), Segmenter(out / "tiny_int8.onnx", threads=2)
    frames = [cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB) for _ in range(8)]
    assert all(np.array_equal(saved, in_process.predict(f)) for saved, f in zip(masks["tiny_int8.onnx"], frames))
    assert np.mean([np.mean(a == b) for a, b in zip(masks["tiny_int8.onnx"], masks["tiny_int8.tflite"])]) > 0.9
    mixed = run_edgeseg("run", out / "tiny_int8.onnx", "--source", video, "--compare", out / "tiny_fp32.tflite",
                        "--compare-every", "1")
    assert mixed.returncode == 0 and "ONNX Runtime (CPUExecutionProvider)" in mixed.stderr
    bad = run_edgeseg("run", out / "tiny_int8.onnx", "--source", video, "--providers", "tensorrt")
    assert bad.returncode == 1 and "no TensorrtExecutionProvider" in error_lines(bad.stderr)[0]
    bad = run_edgeseg("export", run_dir, "--fp16", "--format", "onnx", "--out", tmp_path / "x")
    assert bad.returncode == 2 and "fp16 has no ONNX form" in error_lines(bad.stderr)[0]


def test_labels_head_files_give_the_logits_files_masks(run_dir, video, tmp_path):
    """`edgeseg export RUN --precisions fp32 --labels-head --files both`: each float file also with the upsample and
    argmax in its graph (uint8 ids at the input size, ``output: labels`` in the metadata), whose
    masks through the runtime are those of the logits file; an int8-only export has no float file
    to give a head."""
    import cv2

    out = tmp_path / "models"
    result = run_edgeseg("export", run_dir, "--precisions", "fp32", "--labels-head", "--files", "both", "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pixels = fp32 (its logits, through the runtime)" in result.stdout
    report = json.loads((out / "export.json").read_text())
    assert set(report["files"]) == {"fp32", "onnx_fp32", "fp32_labels", "onnx_fp32_labels"}
    for name, twin in (("fp32_labels", "fp32"), ("onnx_fp32_labels", "onnx_fp32")):
        parity = report["parity"][name]
        assert parity["ok"] and parity["logits_file"] == twin and parity["pixel_agreement_vs_logits"] >= 0.999
    assert {"RESIZE_BILINEAR", "ARG_MAX", "CAST"} <= set(report["files"]["fp32_labels"]["ops"])
    assert {"Resize", "ArgMax", "Cast"} <= set(report["files"]["onnx_fp32_labels"]["ops"])
    from edgeseg.runtime.model.metadata import load_metadata
    from edgeseg.runtime.model.segmenter import Segmenter

    for name in ("tiny_fp32_labels.tflite", "tiny_fp32_labels.onnx"):
        meta = load_metadata(out / name)
        assert (meta.output, meta.output_stride, meta.extra["labels_head"]) == ("labels", 1, "argmax")
        seg = Segmenter(out / name)
        assert seg.output.dtype == np.uint8 and seg.output.shape == (1, 64, 64)
    masks = {}
    for name in ("tiny_fp32.tflite", "tiny_fp32_labels.tflite", "tiny_fp32_labels.onnx"):
        folder = tmp_path / name
        ran = run_edgeseg("run", out / name, "--source", video, "--save-masks", folder)
        assert ran.returncode == 0, ran.stderr[-2000:]
        masks[name] = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob("*.png"))]
    for name in ("tiny_fp32_labels.tflite", "tiny_fp32_labels.onnx"):
        assert len(masks[name]) == 8
        assert np.mean([np.mean(a == b) for a, b in zip(masks[name], masks["tiny_fp32.tflite"])]) >= 0.999
    bad = run_edgeseg("export", run_dir, "--precisions", "int8", "--labels-head", "--out", tmp_path / "x")
    assert bad.returncode == 2 and "a labels head is made for the float files" in error_lines(bad.stderr)[0]


STAND_IN_EDGETPU_COMPILER = """#!/bin/sh
# A stand-in for Coral's edgetpu_compiler: edgetpu_compiler -s -o OUT MODEL
[ "$1" = -s ] && [ "$2" = -o ] || exit 2
name=$(basename "$4" .tflite)
cp "$4" "$3/${name}_edgetpu.tflite"
echo "Edge TPU Compiler version stand-in" > "$3/${name}_edgetpu.log"
echo "Number of operations that will run on Edge TPU: 61"
echo "Number of operations that will run on CPU: 3"
"""


def test_target_edgetpu_is_checked_against_a_float_reference_and_compiled(run_dir, tmp_path):
    """`--target edgetpu --format both` writes no fp32 file: int8 and int8 ONNX are judged against
    a temporary fp32 conversion (before, parity was empty and the ONNX check raised KeyError);
    edgetpu_compiler on PATH compiles the int8 file, and without it the report says what is missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "edgetpu_compiler").write_text(STAND_IN_EDGETPU_COMPILER)
    (bin_dir / "edgetpu_compiler").chmod(0o755)
    out = tmp_path / "tpu"
    result = run_edgeseg("export", run_dir, "--target", "edgetpu", "--format", "both", "--out", out, "--calib-size", "8",
                         env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "export.json").read_text())
    assert set(report["files"]) == {"int8", "onnx_int8"} and not (out / "tiny_fp32.tflite").exists()
    parity = report["parity"]
    assert parity["fp32_reference"]["temporary"] and parity["fp32_reference"]["ok"]
    assert "max_abs_diff_vs_keras" in parity["fp32_reference"]
    assert parity["int8"]["ok"] and "clear_flips" in parity["int8"] and "pixel_agreement_vs_fp32" in parity["int8"]
    assert parity["onnx_int8"]["ok"] and "clear_flips_vs_tflite" in parity["onnx_int8"]
    assert report["edgetpu"] == {"compiled": True, "path": str(out / "tiny_int8_edgetpu.tflite"),
                                 "compiler": str(bin_dir / "edgetpu_compiler"), "ops_on_edgetpu": 61, "ops_on_cpu": 3}
    assert (out / "tiny_int8_edgetpu.tflite").read_bytes() == (out / "tiny_int8.tflite").read_bytes()
    assert (out / "tiny_int8_edgetpu.log").is_file()
    assert "judged against a temporary fp32 conversion" in result.stdout
    assert "compiled: 61 ops on the Edge TPU, 3 on the CPU" in result.stdout
    from edgeseg.export.exporter import compile_for_edgetpu

    missing = compile_for_edgetpu(out / "tiny_int8.tflite", out) if shutil.which("edgetpu_compiler") is None \
        else pytest.skip("a real edgetpu_compiler is installed")
    assert missing["compiled"] is False and "edgetpu_compiler is not installed" in missing["why"]
    assert f"edgetpu_compiler -s -o {out} {out / 'tiny_int8.tflite'}" in missing["why"]


def test_resnet50_trains_exports_and_passes_parity(synth_root, tmp_path):
    """The second backbone end to end: a few steps of ResNet50 (from scratch, 64x64), exported to
    fp32 and int8, every parity check ok, and the device runtime runs the int8 file."""
    run = tmp_path / "r50"
    result = run_edgeseg("train", "--data", synth_root, "--format", "synthetic", "--run-dir", run, "--backbone", "resnet50",
                         "--backbone-weights", "none", "--crop-size", "64x64", "--batch-size", "2", "--aspp-filters", "32",
                         "--decoder-filters", "32", "--epochs", "1", "--steps-per-epoch", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    result = run_edgeseg("export", run, "--int8", "--calib-size", "4")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((run / "export" / "export.json").read_text())
    assert report["ok"] and set(report["files"]) == {"fp32", "int8"}
    assert report["parity"]["fp32"]["max_abs_diff_vs_keras"] < 1e-3 and report["parity"]["int8"]["ok"]
    from edgeseg.runtime.model.metadata import load_metadata

    meta = load_metadata(run / "export" / "r50_int8.tflite")
    assert meta.precision == "int8" and meta.input_size == [64, 64]
    masks = tmp_path / "masks"
    result = run_edgeseg("run", run / "export" / "r50_int8.tflite", "--source", synth_root / "val" / "images",
                         "--save-masks", masks)
    assert result.returncode == 0 and len(list(masks.glob("*.png"))) == len(list((synth_root / "val" / "images").glob("*")))
