"""Each dataset format on tiny fixtures in its real on-disk layout."""

import cv2
import numpy as np
import pytest

from conftest import write_palette_png
from edgeseg.core.images import read_label
from edgeseg.core.labels import IGNORE_LABEL
from edgeseg.data import load_split
from edgeseg.data.check import check_split
from edgeseg.data import synthetic, voc
from edgeseg.core.errors import ConfigError, DataError


def _jpg(path, h=8, w=12):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 100, np.uint8))


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), array)


def test_camvid_shared_layout_maps_void_to_ignore(tmp_path):
    _jpg(tmp_path / "val/images/0001TP_008550.jpg")
    label = np.array([[0, 3, 10, 11] * 3] * 8, np.uint8)
    _png(tmp_path / "val/labels/0001TP_008550.png", label)
    split = load_split(tmp_path, "camvid", "val")
    assert split.info.num_classes == 11
    ids, unknown = read_label(split.items[0][1], split.info.label_map)
    assert ids[0, :4].tolist() == [0, 3, 10, IGNORE_LABEL]
    assert not unknown.any()


def test_camvid_segnet_layout(tmp_path):
    _png(tmp_path / "train/Seq05VD_f00000.png", np.zeros((8, 12, 3), np.uint8))
    _png(tmp_path / "trainannot/Seq05VD_f00000.png", np.ones((8, 12), np.uint8))
    split = load_split(tmp_path, "camvid", "train")
    assert [p.name for p in split.items[0]] == ["Seq05VD_f00000.png", "Seq05VD_f00000.png"]


def test_cityscapes_label_ids_to_train_ids(tmp_path):
    stem = "aachen_000000_000019"
    _png(tmp_path / f"leftImg8bit/train/aachen/{stem}_leftImg8bit.png", np.zeros((8, 12, 3), np.uint8))
    raw = np.array([[7, 8, 26, 33, 0, 1, 4, 9, 14, 29, 24, 23]] * 8, np.uint8)
    _png(tmp_path / f"gtFine/train/aachen/{stem}_gtFine_labelIds.png", raw)
    split = load_split(tmp_path, "cityscapes", "train")
    ids, unknown = read_label(split.items[0][1], split.info.label_map)
    # road, sidewalk, car, bicycle; void ids; parking/guard rail/caravan ignored; person, sky
    assert ids[0].tolist() == [0, 1, 13, 18, 255, 255, 255, 255, 255, 255, 11, 10]
    assert not unknown.any()
    assert split.info.num_classes == 19 and split.info.class_names[13] == "car"


def test_voc_palette_png_decodes_to_indices(tmp_path):
    (tmp_path / "ImageSets/Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets/Segmentation/val.txt").write_text("2007_000032\n")
    _jpg(tmp_path / "JPEGImages/2007_000032.jpg", 4, 6)
    idx = np.array([[0, 1, 15, 20, 255, 0]] * 4, np.uint8)
    (tmp_path / "SegmentationClass").mkdir()
    write_palette_png(tmp_path / "SegmentationClass/2007_000032.png", idx, voc.voc_colormap())
    split = load_split(tmp_path, "voc", "val")
    ids, unknown = read_label(split.items[0][1], split.info.label_map)
    assert ids[0].tolist() == [0, 1, 15, 20, IGNORE_LABEL, 0]
    assert not unknown.any()
    assert split.info.colors[15] == (192, 128, 128)  # person


def test_voc_grey_id_labels_also_decode(tmp_path):
    label = np.array([[0, 1, 15, 20, 255]], np.uint8)
    ids, unknown = voc.INFO.label_map.encode(np.stack([label] * 3, -1))
    assert ids[0].tolist() == [0, 1, 15, 20, IGNORE_LABEL] and not unknown.any()


def test_folder_pairs_by_stem_and_reads_classes(tmp_path):
    (tmp_path / "classes.txt").write_text("background\nleaf 0 200 0\n")
    _jpg(tmp_path / "train/images/a.jpg")
    _png(tmp_path / "train/masks/a.png", np.zeros((8, 12), np.uint8))
    split = load_split(tmp_path, "folder", "train")
    assert split.info.class_names == ("background", "leaf")
    assert split.info.colors[1] == (0, 200, 0)


def test_image_without_label_is_an_error_naming_both(tmp_path):
    (tmp_path / "classes.txt").write_text("a\nb\n")
    _jpg(tmp_path / "train/images/a.jpg")
    _jpg(tmp_path / "train/images/b.jpg")
    _png(tmp_path / "train/masks/a.png", np.zeros((8, 12), np.uint8))
    with pytest.raises(DataError, match=r"b\.jpg has no label .*masks/b\.png"):
        load_split(tmp_path, "folder", "train")


def test_missing_folder_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="dataset folder not found"):
        load_split(tmp_path / "nope", "camvid", "train")
    with pytest.raises(ConfigError, match="camvid, cityscapes"):
        load_split(tmp_path, "kitti", "train")


def test_check_reports_unknown_ids_and_size_mismatch(tmp_path):
    _jpg(tmp_path / "val/images/a.jpg", 8, 12)
    _png(tmp_path / "val/labels/a.png", np.full((8, 12), 42, np.uint8))
    _jpg(tmp_path / "val/images/b.jpg", 8, 12)
    _png(tmp_path / "val/labels/b.png", np.zeros((6, 12), np.uint8))
    module_info = load_split(tmp_path, "camvid", "val").info
    items = load_split(tmp_path, "camvid", "val").items
    report = check_split(module_info, items, [], {}, "val")
    assert not report.ok
    assert any("unknown label id(s) 42" in p and "a.png" in p for p in report.problems)
    assert any("size mismatch" in p and "b.jpg" in p for p in report.problems)


def test_synthetic_is_deterministic(tmp_path):
    a = synthetic.generate(tmp_path / "a", {"train": 2, "val": 1}, size=(32, 48))
    b = synthetic.generate(tmp_path / "b", {"train": 2, "val": 1}, size=(32, 48))
    for name in ("train/masks/00001.png", "val/images/00000.jpg"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    split = load_split(a, "synthetic", "train")
    labels = cv2.imread(str(split.items[0][1]), cv2.IMREAD_UNCHANGED)
    assert labels.max() < split.info.num_classes and len(np.unique(labels)) >= 3
