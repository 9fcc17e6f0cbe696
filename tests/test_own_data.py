"""Your own data, end to end: a folder dataset whose masks are colour PNGs in the colours of its
classes.txt (with an ignored colour), checked, trained, exported, and scored on the device with
`edgeseg run --labels` on the same colour masks (the model carries how to read them)."""

import json

import cv2
import numpy as np

from conftest import make_folder_dataset, run_edgeseg

CLASSES = "background 0 0 0\nroad 128 64 128\ncar 0 0 142\nperson 220 20 60\nignore: 255 255 255\n"


def test_colour_masks_from_check_to_run_labels(tmp_path):
    root = make_folder_dataset(tmp_path / "mine", counts={"train": 6, "val": 3})
    (root / "classes.txt").write_text(CLASSES)
    table = np.array([(0, 0, 0), (128, 64, 128), (0, 0, 142), (220, 20, 60)], np.uint8)
    for mask in root.glob("*/masks/*.png"):  # the tool's export: RGB masks, a void border in white
        rgb = table[cv2.imread(str(mask), cv2.IMREAD_UNCHANGED)]
        rgb[:2] = 255
        cv2.imwrite(str(mask), rgb[..., ::-1])
    result = run_edgeseg("data", "check", root)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stdout + result.stderr
    run = tmp_path / "run"
    result = run_edgeseg("train", "--data", root, "--run-dir", run, "--alpha", "0.35", "--aspp-filters", "8",
                         "--decoder-filters", "8", "--backbone-weights", "none", "--crop-size", "32x32",
                         "--batch-size", "2", "--epochs", "1", "--steps-per-epoch", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "detected dataset format 'folder' (4 classes: background, road, car, person)" in result.stderr
    models = tmp_path / "models"
    result = run_edgeseg("export", run, "--out", models, "--precisions", "fp32")
    assert result.returncode == 0, result.stderr[-2000:]
    model = next(models.glob("*_fp32.tflite"))
    stats = tmp_path / "stats.json"
    result = run_edgeseg("run", model, "--source", root / "val" / "images", "--labels", root / "val" / "masks",
                         "--stats-json", stats)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mIoU on 3 labelled frames: " in result.stdout, result.stdout + result.stderr
    summary = json.loads(stats.read_text())
    assert summary["labelled_frames"] == 3 and summary["labels_refused"] == 0 and "warnings" not in summary
