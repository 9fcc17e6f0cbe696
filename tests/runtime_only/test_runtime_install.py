"""Runs in .venv-runtime (`pip install .` without the train extra): the device install works
with no TensorFlow at all. Models come from tools/maintenance/make_test_models.py ($EDGESEG_TEST_MODELS)."""

import importlib.util
import json
import os
from pathlib import Path

import pytest

from conftest import device_cli as edgeseg


def test_tensorflow_is_not_installed():
    assert importlib.util.find_spec("tensorflow") is None
    assert importlib.util.find_spec("tf_keras") is None


def test_run_and_compare_on_a_video(models, tmp_path):
    stats = tmp_path / "stats.json"
    result = edgeseg("run", models / "tiny_int8.tflite", "--source", models / "clip.mp4", "--compare",
                     models / "tiny_fp32.tflite", "--compare-every", "1", "--stats-json", stats, "--save", tmp_path / "o.mp4")
    assert result.returncode == 0, result.stderr
    summary = json.loads(stats.read_text())
    assert summary["frames"] == 4 and summary["compare"]["frames"] == 4
    import cv2

    video = cv2.VideoCapture(str(tmp_path / "o-000001.mp4"))  # the first 10 s segment of o.mp4
    assert video.get(cv2.CAP_PROP_FPS) == 10.0  # the clip's own rate
    shapes = []
    while True:
        ok, frame = video.read()
        if not ok:
            break
        shapes.append(frame.shape)
    assert shapes == [(64, 64, 3)] * 4


def test_evaluate_tflite_with_labels(models, tmp_path):
    out = tmp_path / "m.json"
    result = edgeseg("evaluate", models / "tiny_fp32.tflite", models / "tiny_int8.tflite", "--data",
                     models / "data", "--format", "synthetic", "--json", out)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["models"]
    assert [r["kind"] for r in rows] == ["fp32", "int8"]
    # the same frames through `edgeseg run --labels` (another scorer: the run loop's) give the same mIoU
    val = models / "data" / "val"
    for row, name in zip(rows, ("tiny_fp32.tflite", "tiny_int8.tflite")):
        stats = tmp_path / f"{name}.json"
        result = edgeseg("run", models / name, "--source", val / "images", "--labels", val / "masks",
                         "--stats-json", stats)
        assert result.returncode == 0, result.stderr
        summary = json.loads(stats.read_text())
        assert summary["labelled_frames"] == row["frames"] == 4
        assert summary["miou"] == pytest.approx(row["miou"], abs=1e-9) and 0 < row["miou"] < 1


def test_benchmark(models):
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{os.getpid()}.json"
    result = edgeseg("benchmark", models / "tiny_int8.tflite", models / "tiny_fp32.tflite", "--threads", "1,2",
                     "--runs", "3", "--json", out)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    out.unlink()
    assert sorted((Path(r["model"]).name, r["threads"]) for r in rows) == [
        ("tiny_fp32.tflite", 1), ("tiny_fp32.tflite", 2), ("tiny_int8.tflite", 1), ("tiny_int8.tflite", 2)]
    for r in rows:
        assert 0 < r["median_ms"] <= r["p95_ms"] < 10_000 and "LiteRT" in r["backend"]
        assert f"{r['median_ms']:>10.1f}" in result.stdout


def test_training_commands_say_what_is_missing(tmp_path):
    result = edgeseg("train", "--epochs", "1")
    assert result.returncode != 0
    assert "pip install" in result.stderr and "train" in result.stderr


def test_onnx_models_say_which_extra_to_install(models):
    """The base device install has no ONNX Runtime: an .onnx model is one line naming the extra."""
    assert importlib.util.find_spec("onnxruntime") is None
    result = edgeseg("run", models / "tiny_int8.onnx", "--source", models / "frames")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "edgeseg: error: tiny_int8.onnx is an ONNX model: pip install 'edgeseg[onnx]' "
        "(onnxruntime, or onnxruntime-gpu on a GPU machine)")
    from edgeseg.runtime.model.metadata import load_metadata  # the metadata reads without onnx or onnxruntime

    assert load_metadata(models / "tiny_int8.onnx").precision == "onnx_int8"


def test_collect_check_and_cvat_export_without_tensorflow(models, tmp_path):
    """The device half of the labelling loop needs no TensorFlow: collect, check, to-cvat."""
    site = tmp_path / "site"
    result = edgeseg("run", models / "tiny_int8.tflite", "--source", models / "clip.mp4", "--collect", site,
                     "--collect-when", "every:2", "--collect-gap", "0", "--collect-dedup", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    kept = sorted((site / "train" / "images").iterdir())
    assert kept and len(kept) == len(list((site / "train" / "masks").iterdir()))
    assert len((site / "frames.csv").read_text().splitlines()) == len(kept) + 1
    check = edgeseg("data", "check", site)
    assert check.returncode == 0, check.stdout + check.stderr
    archive = tmp_path / "task.zip"
    exported = edgeseg("data", "to-cvat", site, archive)
    assert exported.returncode == 0 and f"{len(kept)} masks" in exported.stdout, exported.stderr
