"""Runs in .venv-runtime: `edgeseg run --labels` on the device checks every label before it
scores it (issue 30's "labels that cannot be right", issue 31's "0 labelled frames")."""

import json
import shutil
from pathlib import Path

import numpy as np

from conftest import device_cli as edgeseg


def labelled_frames(models: Path, root: Path):
    """Six frames f0..f5 and labels: f0 right; f1 does not decode; f2 colour (3 channels); f3 with
    ids 200 and 57 the 7-class model does not have; f4 of another size; f5 none."""
    import cv2

    frames, labels = root / "frames", root / "labels"
    frames.mkdir()
    labels.mkdir()
    sources = sorted((models / "frames").glob("*.png"))
    for i in range(6):
        shutil.copy(sources[i % len(sources)], frames / f"f{i}.png")
    mask = cv2.imread(str(models / "data" / "val" / "masks" / f"{sources[0].stem}.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(labels / "f0.png"), mask)
    (labels / "f1.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    colour = np.stack([mask * 30, mask * 10, 255 - mask * 20], -1).astype(np.uint8)
    cv2.imwrite(str(labels / "f2.png"), colour)
    wrong = mask.copy()
    wrong[:4] = 200
    wrong[-4:] = 57
    cv2.imwrite(str(labels / "f3.png"), wrong)
    cv2.imwrite(str(labels / "f4.png"), mask[: mask.shape[0] // 2])
    return frames, labels


def test_labels_that_cannot_be_right_are_refused_said_once_and_counted(models, tmp_path):
    """Each kind of refusal is said once, at its first file. A model whose label map has the
    dataset's colours (the synthetic set's, in every model exported since the own-data work)
    decodes an RGB label through them: f2's colours are unknown ones, the same kind as f3's ids."""
    from edgeseg.runtime.model.metadata import load_metadata

    frames, labels = labelled_frames(models, tmp_path)
    stats = tmp_path / "stats.json"
    result = edgeseg("run", models / "tiny_int8.tflite", "--source", frames, "--labels", labels, "--stats-json", stats)
    assert result.returncode == 0, result.stderr[-2000:]
    by_colour = bool(load_metadata(models / "tiny_int8.tflite").label_map().colors)
    said = ["f1.png: cut short", "f4.png is 64x32 but the frame is 64x64 (WxH)"]
    said += (["f2.png holds colour ("] if by_colour else
             ["f2.png: label image has colour channels",
              "f3.png holds id 57 (256 px), id 200 (256 px), outside the model's 7 classes (valid: 0..6; 255 ignored)"])
    for words in said:
        assert words in result.stderr, (words, result.stderr)
    assert result.stderr.count("such labels are not scored") == len(said)
    assert "mIoU on 1 labelled frames (4 labels refused, 1 frames without a label): " in result.stdout
    summary = json.loads(stats.read_text())
    assert summary["labelled_frames"] == 1 and summary["labels_refused"] == 4 and summary["unlabelled_frames"] == 1
    kinds = ("label_unreadable", "label_wrong_channels", "label_unknown_ids", "label_wrong_size")
    want = ({"label_unreadable": 1, "label_unknown_ids": 2, "label_wrong_size": 1} if by_colour else dict.fromkeys(kinds, 1))
    assert {k: summary["warnings"][k] for k in kinds if k in summary["warnings"]} == want


def test_labels_matching_no_frame_say_0_labelled_frames(models, tmp_path):
    frames, labels = labelled_frames(models, tmp_path)
    for path in labels.iterdir():
        path.rename(labels / f"other_{path.name}")
    stats = tmp_path / "stats.json"
    result = edgeseg("run", models / "tiny_int8.tflite", "--source", frames, "--labels", labels, "--stats-json", stats)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"0 labelled frames: no label in {labels} matches the name of any of the 6 frames (frame f0 would have f0.png)" \
        in result.stdout
    summary = json.loads(stats.read_text())
    assert summary["labelled_frames"] == 0 and summary["unlabelled_frames"] == 6 and "miou" not in summary
