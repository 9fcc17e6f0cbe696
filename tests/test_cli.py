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
    assert "unknown label id 77 (64 px) in" in result.stdout
    assert "labels with values outside the classes: 1 (valid: 0..10; 11 ignored): id 77: 64 px in 1 file(s)" in result.stdout
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


# --- your own data, right the first time ---------------------------------------------------------

@pytest.fixture
def said(edgeseg_log):
    """The edgeseg log lines of the test, and no stream handler of an earlier in-process command
    (bound to a stream CliRunner has closed since)."""
    import logging

    log = logging.getLogger("edgeseg")
    streams = [h for h in log.handlers if isinstance(h, logging.StreamHandler)]
    for handler in streams:
        log.removeHandler(handler)
    yield edgeseg_log
    for handler in streams:
        log.addHandler(handler)


TINY = ("--alpha", "0.35", "--aspp-filters", "8", "--decoder-filters", "8", "--backbone-weights", "none",
        "--crop-size", "32x32", "--batch-size", "2", "--epochs", "1", "--steps-per-epoch", "1")


def test_data_check_reads_a_folder_dataset_with_a_labels_folder_as_the_user_meant(tmp_path, said):
    from conftest import make_folder_dataset

    root = make_folder_dataset(tmp_path / "mine", mask_dir="labels")
    result = invoke("data", "check", root)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"{root}: detected dataset format 'folder' (4 classes: background, road, car, person)" in said
    assert "train: 6 pairs, 0 images without label; sizes (WxH): 64x48 (6)" in result.stdout
    assert result.stdout.strip().endswith("ok")


def _break(root):
    """Each kind of problem once or twice: ids outside the classes, two sizes, a cut-short JPEG,
    an image without its mask."""
    label = cv2.imread(str(root / "train/labels/f001.png"), cv2.IMREAD_UNCHANGED)
    saved = {p: p.read_bytes() for p in (root / "train/labels").iterdir()}
    saved.update({p: p.read_bytes() for p in (root / "train/images").iterdir()})
    for name in ("f001", "f002"):
        bad = label.copy()
        bad[:4, :4] = 7
        cv2.imwrite(str(root / f"train/labels/{name}.png"), bad)
    cv2.imwrite(str(root / "train/labels/f003.png"), label[:24])
    jpeg = (root / "train/images/f004.jpg").read_bytes()
    (root / "train/images/f004.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "train/labels/f005.png").unlink()
    return saved


def test_train_refuses_what_data_check_refuses_before_anything_is_written(tmp_path, said):
    """The reported cases: masks with id 7 of a 4-class set trained on without a word; a pair
    of two sizes or a cut-short JPEG ending in a TensorFlow traceback and a run folder that
    blocked the same command. Now: one line per kind of problem before the first step, nothing
    written, and the same command runs once the data is fixed."""
    from conftest import make_folder_dataset

    root = make_folder_dataset(tmp_path / "mine", mask_dir="labels")
    saved = _break(root)
    check = invoke("data", "check", root)
    assert check.exit_code == 1 and "5 problem(s) found" in one_error(check)
    run = tmp_path / "run"
    result = invoke("train", "--data", root, "--run-dir", run, *TINY)
    error = one_error(result)
    assert error.startswith("edgeseg: error: 5 frame(s) cannot be trained on; nothing was written")
    lines = result.stderr[result.stderr.index(error):].splitlines()[1:]
    assert len(lines) == 4, result.stderr
    assert "images without a label: 1: " in lines[0] and "f005.jpg" in lines[0]
    assert "labels with values outside the classes: 2 (valid: 0..3; 255 ignored): id 7: 32 px in 2 file(s)" in lines[1]
    assert "f001.png" in lines[1] and "f002.png" in lines[1]
    assert "image and label of different sizes: 1 (WxH): " in lines[2] and "f003.jpg is 64x48 but" in lines[2]
    assert "images that cannot be read: 1: " in lines[3] and "f004.jpg: cut short" in lines[3]
    assert "Traceback" not in result.stderr
    assert not run.exists()
    assert any(line.startswith("checked 7 frames in") for line in said), said  # not the one without a mask
    for path, data in saved.items():
        path.write_bytes(data)
    result = invoke("train", "--data", root, "--run-dir", run, *TINY)
    assert result.exit_code == 0, result.stdout + result.stderr
    dataset = json.loads((run / "dataset.json").read_text())
    assert dataset["class_names"] == ["background", "road", "car", "person"] and dataset["format"] == "folder"
    assert dataset["label_ids"] == {"0": 0, "1": 1, "2": 2, "3": 3, "255": 255}


def test_a_file_that_fails_inside_the_pipeline_ends_in_one_line_and_leaves_nothing(tmp_path, monkeypatch, said):
    """What the check before training cannot see (a file changed after it, say) still ends in
    one line naming the file, and the run folder it had begun is removed."""
    import edgeseg.train.fit as fit
    from conftest import make_folder_dataset

    monkeypatch.setattr(fit, "check_before_training", lambda *args, **kwargs: {})
    root = make_folder_dataset(tmp_path / "mine", mask_dir="labels")
    jpeg = (root / "train/images/f004.jpg").read_bytes()
    (root / "train/images/f004.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    run = tmp_path / "run"
    result = invoke("train", "--data", root, "--run-dir", run, "--cache", "none", *TINY[:-2], "--steps-per-epoch", "4")
    error = one_error(result)
    assert "cannot decode image" in error and "f004.jpg" in error, error
    assert "Traceback" not in result.stderr and not run.exists()
    (root / "train/images/f004.jpg").write_bytes(jpeg)
    label = root / "train/labels/f002.png"
    cv2.imwrite(str(label), cv2.imread(str(label), cv2.IMREAD_UNCHANGED)[:30])
    run.mkdir()  # an empty folder given as --run-dir stays, empty
    result = invoke("train", "--data", root, "--run-dir", run, "--cache", "none", *TINY[:-2], "--steps-per-epoch", "4")
    error = one_error(result)
    assert "image and label sizes differ" in error and "f002.jpg" in error and "f002.png" in error, error
    assert run.is_dir() and not any(run.iterdir())
