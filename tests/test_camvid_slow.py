"""Real-data checks on ../shared/data/camvid (skipped when it is absent)."""

import json

import numpy as np
import pytest

from conftest import run_edgeseg
from edgeseg.core.labels import IGNORE_LABEL
from edgeseg.data import load_split
from edgeseg.data.check import check_split

pytestmark = pytest.mark.slow


def test_camvid_splits_and_labels_are_clean(camvid_root):
    train = load_split(camvid_root, "camvid", "train")
    val = load_split(camvid_root, "camvid", "val")
    assert (len(train.items), len(val.items)) == (367, 101)
    report = check_split(val.info, val.items, [], {}, "val")
    assert report.ok, report.problems[:3]
    assert dict(report.sizes) == {"360x480": 101}


def test_camvid_eval_frames_pad_to_368x480(camvid_root):
    from edgeseg.data.pipeline import build_eval_dataset

    val = load_split(camvid_root, "camvid", "val")
    images, labels = next(iter(build_eval_dataset(val, 2, (368, 480))))
    assert images.shape == (2, 368, 480, 3)
    assert (labels.numpy()[:, 360:] == IGNORE_LABEL).all()
    assert set(np.unique(labels.numpy()[:, :360])) <= set(range(11)) | {IGNORE_LABEL}


def test_camvid_short_training_end_to_end(camvid_root, tmp_path):
    run = tmp_path / "camvid"
    result = run_edgeseg("train", "--data", camvid_root, "--format", "camvid", "--run-dir", run,
                         "--alpha", "0.35", "--crop-size", "128x128", "--batch-size", "4",
                         "--epochs", "1", "--steps-per-epoch", "5", "--aspp-filters", "32",
                         "--decoder-filters", "32")
    assert result.returncode == 0, result.stderr[-2000:]
    best = json.loads((run / "best.json").read_text())
    assert set(best["per_class_iou"]) == {"sky", "building", "pole", "road", "sidewalk", "tree",
                                           "sign_symbol", "fence", "car", "pedestrian", "bicyclist"}
    assert "eval_size:\n  - 368\n  - 480" in (run / "config.yaml").read_text()
