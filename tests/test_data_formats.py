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
    texts = [p.text for p in report.problems]
    assert any("unknown label id 42 (96 px)" in t and "a.png" in t for t in texts), texts
    assert any("size mismatch" in t and "b.jpg is 12x8 but" in t and "(WxH)" in t for t in texts), texts
    assert report.unknown == {42: [96, [items[0][1]]]}


def test_synthetic_is_deterministic(tmp_path):
    a = synthetic.generate(tmp_path / "a", {"train": 2, "val": 1}, size=(32, 48))
    b = synthetic.generate(tmp_path / "b", {"train": 2, "val": 1}, size=(32, 48))
    for name in ("train/masks/00001.png", "val/images/00000.jpg"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    split = load_split(a, "synthetic", "train")
    labels = cv2.imread(str(split.items[0][1]), cv2.IMREAD_UNCHANGED)
    assert labels.max() < split.info.num_classes and len(np.unique(labels)) >= 3


# --- your own data: format detection -------------------------------------------------------------

def test_classes_txt_with_a_labels_folder_is_a_folder_dataset_not_camvid(tmp_path):
    """The reported case: classes.txt + train/images + train/labels was taken for CamVid (11
    classes) and its classes.txt ignored."""
    from conftest import make_folder_dataset
    from edgeseg.data import detect_format

    root = make_folder_dataset(tmp_path / "mine", mask_dir="labels")
    assert detect_format(root) == "folder"
    split = load_split(root, "folder", "train")
    assert split.info.class_names == ("background", "road", "car", "person")
    assert split.items[0][1].parent.name == "labels"
    assert check_split(split.info, split.items, [], {}, "train").ok


def test_camvid_layout_holding_other_data_is_refused_with_what_to_do(tmp_path):
    from conftest import make_folder_dataset
    from edgeseg.data import detect_format

    # ids CamVid does not have
    root = make_folder_dataset(tmp_path / "ids", mask_dir="labels", classes_txt=False)
    _png(root / "train/labels/f000.png", np.full((48, 64), 30, np.uint8))
    with pytest.raises(DataError, match=r"CamVid's layout but its masks hold ids .*30.*classes\.txt.*--format camvid"):
        detect_format(root)
    # CamVid's ids, but not CamVid's frame names: own data without classes.txt is not guessed
    root = make_folder_dataset(tmp_path / "names", mask_dir="labels", classes_txt=False)
    with pytest.raises(DataError, match=r"do not bear CamVid's names .*classes\.txt"):
        detect_format(root)
    # CamVid's names and ids: CamVid, in both of its layouts
    root = make_folder_dataset(tmp_path / "camvid", mask_dir="labels", classes_txt=False, stem="0001TP_00")
    assert detect_format(root) == "camvid"
    _png(tmp_path / "segnet/train/Seq05VD_f00000.png", np.zeros((8, 12, 3), np.uint8))
    _png(tmp_path / "segnet/trainannot/Seq05VD_f00000.png", np.full((8, 12), 11, np.uint8))
    assert detect_format(tmp_path / "segnet") == "camvid"


def test_vocdevkit_points_to_voc2012(tmp_path):
    from conftest import make_voc
    from edgeseg.data import detect_format

    make_voc(tmp_path / "VOCdevkit" / "VOC2012", {"train": [(16, 20)]})
    for root in (tmp_path / "VOCdevkit", tmp_path):
        with pytest.raises(DataError, match=r"extracted VOCdevkit: point --data at .*VOCdevkit/VOC2012"):
            detect_format(root)
    with pytest.raises(DataError, match=r"point --data at .*VOC2012"):
        load_split(tmp_path / "VOCdevkit", "voc", "train")
    assert detect_format(tmp_path / "VOCdevkit" / "VOC2012") == "voc"


def test_voc_layout_with_other_colours_is_not_pascal_voc(tmp_path):
    """Labelling tools export their own classes in VOC's layout: not read as VOC's 21 classes."""
    from edgeseg.data import detect_format

    (tmp_path / "ImageSets/Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets/Segmentation/train.txt").write_text("a\n")
    _jpg(tmp_path / "JPEGImages/a.jpg")
    rgb = np.zeros((8, 12, 3), np.uint8)
    rgb[:, 6:] = (250, 50, 83)  # a colour of some tool, not VOC's
    _png(tmp_path / "SegmentationClass/a.png", rgb[..., ::-1])
    with pytest.raises(DataError, match=r"Pascal VOC's layout but its masks hold 1 colours, e\.g\. \(250, 50, 83\)"):
        detect_format(tmp_path)


def test_cityscapes_near_misses_get_a_hint(tmp_path):
    from edgeseg.data import detect_format

    stem = "aachen_000000_000019"
    trainids = tmp_path / "trainids"
    _png(trainids / f"leftImg8bit/train/aachen/{stem}_leftImg8bit.png", np.zeros((8, 12, 3), np.uint8))
    _png(trainids / f"gtFine/train/aachen/{stem}_gtFine_labelTrainIds.png", np.zeros((8, 12), np.uint8))
    with pytest.raises(DataError, match=r"only \*_gtFine_labelTrainIds\.png.*unpack gtFine_trainvaltest\.zip"):
        detect_format(trainids)
    with pytest.raises(DataError, match=r"has no label .*labelIds\.png.*only \*_gtFine_labelTrainIds"):
        load_split(trainids, "cityscapes", "train")
    flat = tmp_path / "flat"
    _png(flat / f"leftImg8bit/train/{stem}_leftImg8bit.png", np.zeros((8, 12, 3), np.uint8))
    _png(flat / f"gtFine/train/{stem}_gtFine_labelIds.png", np.zeros((8, 12), np.uint8))
    with pytest.raises(DataError, match=r"directly in SPLIT/ folders; Cityscapes keeps them in city folders"):
        detect_format(flat)
    with pytest.raises(DataError, match=r"no \(image, label\) pairs .*city folders"):
        load_split(flat, "cityscapes", "train")


def test_ambiguous_layouts_are_refused_with_the_candidates(tmp_path):
    from conftest import make_voc
    from edgeseg.data import detect_format

    root = make_voc(tmp_path / "both", {"train": [(16, 20)]})
    stem = "aachen_000000_000019"
    _png(root / f"leftImg8bit/train/aachen/{stem}_leftImg8bit.png", np.zeros((8, 12, 3), np.uint8))
    _png(root / f"gtFine/train/aachen/{stem}_gtFine_labelIds.png", np.zeros((8, 12), np.uint8))
    with pytest.raises(DataError, match=r"could be cityscapes or voc: pass --format"):
        detect_format(root)
    # a classes.txt without the folder layout: the user's file is not overridden by a guess
    (root / "classes.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"has a classes\.txt.*not the folder layout.*looks like cityscapes and voc"):
        detect_format(root)


# --- your own data: masks as tools export them ---------------------------------------------------

def _folder(tmp_path, classes: str, mask):
    (tmp_path / "classes.txt").write_text(classes)
    _jpg(tmp_path / "train/images/a.jpg", *mask.shape[:2])
    (tmp_path / "train/masks").mkdir(parents=True, exist_ok=True)
    return tmp_path / "train/masks/a.png"


def test_indexed_png_masks_read_their_index_as_the_id(tmp_path):
    from conftest import write_palette_png

    index = np.array([[0, 1, 2, 3, 255, 0]] * 4, np.uint8)
    path = _folder(tmp_path, "a\nb\nc\nd\n", index)
    palette = np.zeros((256, 3), np.uint8)
    palette[1] = palette[3] = (200, 10, 10)  # two classes of the same colour: only the index tells them apart
    write_palette_png(path, index, palette)
    split = load_split(tmp_path, "folder", "train")
    ids, unknown = read_label(path, split.info.label_map)
    assert ids[0].tolist() == [0, 1, 2, 3, IGNORE_LABEL, 0] and not unknown.any()
    index[0, 0] = 9
    write_palette_png(path, index, palette)
    report = check_split(split.info, split.items, [], {}, "train")
    assert [p.kind for p in report.problems] == ["unknown_values"]
    assert "unknown label id 9 (1 px)" in report.problems[0].text


def test_16_bit_id_masks(tmp_path):
    label = np.array([[0, 1, 2, 255]] * 3, np.uint16)
    path = _folder(tmp_path, "a\nb\nc\n", label)
    _png(path, label)
    split = load_split(tmp_path, "folder", "train")
    ids, unknown = read_label(path, split.info.label_map)
    assert ids[0].tolist() == [0, 1, 2, IGNORE_LABEL] and not unknown.any()
    label[0, 0] = 300
    _png(path, label)
    report = check_split(split.info, split.items, [], {}, "train")
    assert "unknown label id 300 (1 px)" in report.problems[0].text


def test_colour_masks_decode_through_the_colours_of_classes_txt(tmp_path):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[:, 2:4] = (0, 200, 0)
    rgb[:, 4:6] = (255, 0, 0)
    rgb[0, 6:] = (9, 9, 200)  # a colour classes.txt does not give
    path = _folder(tmp_path, "background 0 0 0\nleaf 0 200 0\nfruit 255 0 0\n", rgb)
    _png(path, rgb[..., ::-1])
    split = load_split(tmp_path, "folder", "train")
    ids, unknown = read_label(path, split.info.label_map)
    assert ids[1].tolist() == [0, 0, 1, 1, 2, 2, 0, 0] and unknown.sum() == 2
    report = check_split(split.info, split.items, [], {}, "train")
    assert report.unknown == {(9, 9, 200): [2, [path]]}
    assert "unknown label colour (9, 9, 200) (2 px)" in report.problems[0].text
    assert "colour (9, 9, 200): 2 px in 1 file(s)" in report.kind_lines()[0]
    # without colours in classes.txt, a colour mask is named as such, with what to do
    (tmp_path / "classes.txt").write_text("background\nleaf\nfruit\n")
    split = load_split(tmp_path, "folder", "train")
    report = check_split(split.info, split.items, [], {}, "train")
    assert [p.kind for p in report.problems] == ["colour_label"]
    assert "give each class its colour in classes.txt" in report.problems[0].text


def test_voc_colour_masks_name_an_off_palette_colour_not_a_packed_number(tmp_path):
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[:, 3:] = voc.voc_colormap()[15]  # person
    rgb[0, 0] = (30, 200, 90)
    ids, unknown = voc.INFO.label_map.encode(rgb)
    assert ids[1].tolist() == [0, 0, 0, 15, 15, 15] and unknown.sum() == 1
    _, values = voc.INFO.label_map.census(rgb)
    assert values == {(30, 200, 90): 1}


def test_ignore_values_declared_in_classes_txt(tmp_path):
    from edgeseg.core.labels import read_class_file

    (tmp_path / "classes.txt").write_text(
        "# mask 0 is unlabelled; 200 marks borders; white is void in colour masks\n"
        "unlabelled\nroad 128 64 128\ncar 0 0 142  # cars and vans\n\nignore: 0\nignore: 200\nignore: 255 255 255 # void\n")
    classes = read_class_file(tmp_path / "classes.txt")
    assert classes.names == ("road", "car") and classes.colors == ((128, 64, 128), (0, 0, 142))
    ids, unknown = classes.label_map.encode(np.array([[0, 1, 2, 200, 255]], np.uint8))
    assert ids[0].tolist() == [255, 0, 1, 255, 255] and not unknown.any()
    rgb = np.array([[[255, 255, 255], [128, 64, 128], [0, 0, 142]]], np.uint8)
    assert classes.label_map.encode(rgb)[0][0].tolist() == [255, 0, 1]
    for text, message in (("a\nb c\n", r"classes\.txt:2: expected 'name' or 'name R G B'"),
                          ("a\nignore: x\n", r"classes\.txt:2: an ignore id must be integers 0-255"),
                          ("a 1 2 3\nb 1 2 3\n", "two lines give the same colour"),
                          ("a\nb\na\n", "class 'a' is listed twice")):
        (tmp_path / "classes.txt").write_text(text)
        with pytest.raises(DataError, match=message):
            read_class_file(tmp_path / "classes.txt")


def test_probe_finds_cut_short_and_damaged_images_without_decoding(tmp_path):
    from edgeseg.core.images import UnreadableImage, probe_image

    image = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    for suffix in (".jpg", ".png", ".bmp"):
        _png(tmp_path / f"ok{suffix}", image)
        assert probe_image(tmp_path / f"ok{suffix}") == (40, 30)
    jpg, png = (tmp_path / "ok.jpg").read_bytes(), (tmp_path / "ok.png").read_bytes()
    cases = {"cut.jpg": (jpg[: len(jpg) // 2], "cut short"), "cut.png": (png[: len(png) // 2], "cut short"),
             "flipped.png": (png[:60] + bytes([png[60] ^ 1]) + png[61:], "checksum"),
             "empty.jpg": (b"", "empty"), "text.jpg": (b"not an image", "not an image")}
    for name, (data, words) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UnreadableImage, match=words):
            probe_image(tmp_path / name)


def test_the_check_before_training_reads_only_what_changed_since_it_last_passed(tmp_path, monkeypatch):
    import edgeseg.data.check as check
    from conftest import make_folder_dataset
    from edgeseg.data.preflight import check_before_training

    monkeypatch.setenv("EDGESEG_CACHE", str(tmp_path / "cache"))
    root = make_folder_dataset(tmp_path / "mine")
    train = load_split(root, "folder", "train", allow_unpaired=True)
    read = []
    scan = check.scan_pair
    monkeypatch.setattr(check, "scan_pair", lambda *args: read.append(args[2].name) or scan(*args))
    first = check_before_training([train])[id(train)]
    assert len(read) == 6 and first.sum() == 6 * 48 * 64  # pixels per class, for the class weights
    read.clear()
    assert (check_before_training([train])[id(train)] == first).all() and read == []
    bad = cv2.imread(str(train.items[2][1]), cv2.IMREAD_UNCHANGED)
    bad[0, 0] = 9
    _png(train.items[2][1], bad)
    with pytest.raises(DataError, match=r"(?s)1 frame\(s\) cannot be trained on.*id 9: 1 px in 1 file\(s\): .*f002\.png"):
        check_before_training([train])
    assert read == ["f002.png"]
