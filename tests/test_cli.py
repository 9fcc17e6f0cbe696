"""The command line: help, one-line errors with non-zero exits, data/model subcommands."""

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import error_lines, run_edgeseg
from edgeseg.cli.main import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error(result) -> str:
    lines = error_lines(result.stderr)
    assert result.exit_code != 0
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_help_lists_every_command_with_its_summary():
    result = invoke("--help")
    assert result.exit_code == 0
    rows = {}
    for line in result.stdout.splitlines():  # rich's "Commands" panel: "│ name   summary │"
        cells = line.strip("│ ").split(None, 1)
        if len(cells) == 2 and cells[0].isidentifier():
            rows[cells[0]] = cells[1]
    expected = {"train": "Train DeepLabv3+", "evaluate": "mIoU, pixel accuracy", "export": "Write TFLite models",
                "run": "Segment a camera", "benchmark": "Inference latency", "data": "Inspect, convert",
                "model": "Inspect model architectures"}
    assert set(expected) <= set(rows), rows
    for name, summary in expected.items():
        assert rows[name].startswith(summary), (name, rows[name])


def test_usage_errors_are_one_line_with_exit_code_2(capsys):
    from edgeseg.cli.main import main

    for argv, message in ((["train", "--epochs", "0"], "'--epochs'"), (["run", "m", "--threads", "0"], "'--threads'"),
                          (["run", "m", "--upsample", "slow"], "'slow' is not one of 'auto', 'exact', 'fast'"),
                          (["train", "--frobnicate"], "No such option: --frobnicate"),
                          (["export"], "Missing argument 'run'")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("edgeseg: error: ") and message in err[0], (argv, err)


def test_missing_dataset_folder(tmp_path):
    result = invoke("train", "--data", tmp_path / "nope", "--format", "camvid")
    assert "dataset folder not found" in one_error(result) and "nope" in result.stderr


def test_unknown_backbone():
    result = invoke("train", "--backbone", "vgg16")
    assert one_error(result) == "edgeseg: error: unknown backbone 'vgg16'; choose one of: mobilenetv2, resnet50"


def test_crop_not_divisible_by_output_stride(synth_root):
    result = invoke("train", "--data", synth_root, "--crop-size", "100x100")
    assert "crop size: input 100x100 is not divisible by output stride 16; use 112x112" in one_error(result)


def test_image_without_label(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "labels").mkdir(parents=True)
        cv2.imwrite(str(tmp_path / split / "images/a.jpg"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "train/labels/a.png"), np.zeros((8, 8), np.uint8))
    result = invoke("train", "--data", tmp_path, "--format", "camvid")
    assert "a.jpg has no label" in one_error(result) and "val/labels/a.png" in result.stderr
    result = invoke("data", "check", tmp_path, "--format", "camvid", "--split", "val")
    assert result.exit_code == 1
    assert "missing label" in result.stdout and "a.jpg" in result.stdout


def test_label_id_out_of_range(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "labels").mkdir(parents=True)
        cv2.imwrite(str(tmp_path / split / "images/a.jpg"), np.zeros((8, 8, 3), np.uint8))
        cv2.imwrite(str(tmp_path / split / "labels/a.png"), np.full((8, 8), 3, np.uint8))
    cv2.imwrite(str(tmp_path / "val/labels/a.png"), np.full((8, 8), 77, np.uint8))
    result = invoke("data", "check", tmp_path, "--format", "camvid")
    assert result.exit_code == 1
    assert "unknown label id(s) 77" in result.stdout
    assert "1 problem(s) found" in one_error(result)


def test_data_check_passes_on_good_data(synth_root):
    result = invoke("data", "check", synth_root, "--format", "synthetic")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "train: 16 pairs" in result.stdout and result.stdout.strip().endswith("ok")


def test_data_stats_prints_frequencies_and_weights(synth_root, tmp_path):
    out = tmp_path / "stats.json"
    result = invoke("data", "stats", synth_root, "--format", "synthetic", "--json", out)
    assert result.exit_code == 0, result.stderr
    assert "sky" in result.stdout and "--class-weights" in result.stdout
    import json

    stats = json.loads(out.read_text())
    assert abs(sum(stats["share"]) - 1) < 1e-6 and len(stats["median_freq"]) == 7


def test_model_summary_prints_parameter_count():
    from edgeseg.config import ModelConfig
    from edgeseg.models import build_deeplabv3plus
    from edgeseg.models.deeplabv3plus import count_params

    result = invoke("model", "summary", "--alpha", "0.35", "--input-size", "64x64", "--num-classes", "5", "--no-macs")
    assert result.exit_code == 0, result.stderr
    expected = count_params(build_deeplabv3plus(ModelConfig(alpha=0.35), 5, (64, 64)))
    assert f"parameters: {expected:,}" in result.stdout


def test_macs_counted_from_graph_match_layer_arithmetic():
    from edgeseg._tf import keras
    from edgeseg.models.cost import count_macs

    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    model = keras.Model(inp, x)
    expected = 16 * 16 * (9 * 3 * 8 + 9 * 8)
    assert count_macs(model) == expected


def test_tfrecords_then_train_from_them(synth_root, tmp_path):
    out = tmp_path / "records"
    result = invoke("data", "tfrecords", synth_root, "--format", "synthetic", "--out", out, "--shard-size", "8")
    assert result.exit_code == 0, result.stderr
    assert len(list(out.glob("train-*.tfrecord"))) == 2
    result = run_edgeseg("train", "--data", out, "--format", "tfrecord", "--run-dir", tmp_path / "run",
                         "--alpha", "0.35", "--crop-size", "64x64", "--batch-size", "4", "--epochs", "1",
                         "--steps-per-epoch", "2", "--aspp-filters", "16", "--decoder-filters", "16")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "best mIoU on val" in result.stdout


@pytest.mark.parametrize("spelling", [("--precisions", "--files"), ("--formats", "--format")])
def test_export_options_new_and_old_spellings(spelling, tmp_path):
    """On export, --files is the kind of file and --precisions the precisions (on train and data,
    --format is a dataset's); the old spellings keep working for a release."""
    precisions, files = spelling
    result = run_edgeseg("export", tmp_path, precisions, "fp16", files, "onnx")
    assert result.returncode == 2
    assert error_lines(result.stderr) == ["edgeseg: error: --files onnx: fp16 has no ONNX form (ONNX: fp32, int8, qat); "
                                          "use --files both or leave it out"]


def test_defaults_written_in_help_texts_are_shown():
    """Rich reads "[default: X]" as markup and drops it unless escaped."""
    for command, shown in (("run", "Window length in frames [default: 300]"),
                           ("train", "[default: on]"), ("export", "QAT fine-tuning steps [default: 300]")):
        result = run_edgeseg(command, "--help", env={"COLUMNS": "250"})
        assert result.returncode == 0 and shown in result.stdout, (command, result.stdout[-3000:])


def test_qat_compares_with_the_float_score_of_the_same_split(tmp_path):
    """`train --qat` scores val; the float number beside it is val's too, never a held-out score."""
    from edgeseg.cli.train import _float_val_miou
    from edgeseg.rundir import RunDir

    rd = RunDir(tmp_path)
    (tmp_path / "best.json").write_text(json.dumps({"miou": 0.40}))  # the best validation
    assert _float_val_miou(rd) == 0.40  # validated on val: the same split
    (tmp_path / "summary.json").write_text(json.dumps({"holdout": {"miou": 0.40}}))
    assert _float_val_miou(rd) is None  # validated on held-out frames: not comparable
    (tmp_path / "summary.json").write_text(json.dumps({"holdout": {"miou": 0.40}, "report": {"split": "val", "miou": 0.62}}))
    assert _float_val_miou(rd) == 0.62  # val scored once with the shipped weights
