"""No command deletes or rewrites what it did not create: every command that takes a path, given
a user's folder in a wrong combination, fails with one line and leaves the folder as it was."""

import hashlib
import os
from pathlib import Path

import pytest

from edgeseg.cli.main import main


def snapshot(folder: Path) -> dict:
    """Every file and folder below ``folder``: kind, size, mtime and content hash."""
    out = {".": ("dir", folder.stat().st_mtime_ns)}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_dir():
            out[rel] = ("dir", path.stat().st_mtime_ns)
        else:
            out[rel] = ("file", path.stat().st_size, path.stat().st_mtime_ns,
                        hashlib.sha256(path.read_bytes()).hexdigest())
    return out


@pytest.fixture
def victim(tmp_path):
    """A user's folder: a sentinel file and a sub-folder with a picture in it."""
    folder = tmp_path / "mine"
    (folder / "holiday").mkdir(parents=True)
    (folder / "sentinel.txt").write_text("precious\n")
    (folder / "holiday" / "beach.jpg").write_bytes(b"\xff\xd8not really a jpeg")
    return folder


def cases(victim: Path, run: Path, synth: Path, model: Path, tmp: Path):
    """(argv, what the one-line error must mention) for wrong uses of every path-taking command."""
    v, s = str(victim), str(victim / "sentinel.txt")
    return [
        (["train", "--data", v], "cannot tell the dataset format"),
        (["train", "--data", v, "--format", "synthetic"], "refusing to generate synthetic data"),
        (["train", "--data", v, "--format", "camvid"], "no CamVid split"),
        (["train", "--data", v, "--format", "tfrecord"], "not a TFRecord dataset"),
        (["train", "--data", str(synth), "--run-dir", v], "is not an empty folder or an edgeseg run"),
        (["train", "--run-dir", v, "--resume"], "not a training run"),
        (["train", "--config", s], "expected a mapping"),
        (["train", "--qat", "--from", v], "not a training run"),
        (["train", "--data", v, "--resume", "--run-dir", str(run)], "--data would be ignored"),
        (["data", "synth", v], "refusing to generate synthetic data"),
        (["data", "synth", s], "is a file, not a folder"),
        (["data", "check", v], "cannot tell the dataset format"),
        (["data", "stats", v], "cannot tell the dataset format"),
        (["data", "stats", str(synth), "--json", v], "is a folder; give a file name"),
        (["data", "tfrecords", str(synth), "--out", v], "not empty and holds no edgeseg TFRecords"),
        (["data", "tfrecords", v, "--out", str(tmp / "records")], "cannot tell the dataset format"),
        (["export", v], "not a training run"),
        (["export", str(run), "--out", v, "--formats", "fp32", "--io", "uint8"], "--io does nothing"),
        (["export", str(run), "--out", v, "--formats", "fp32", "--keep-float", "x"], "--keep-float applies to the int8"),
        (["export", str(run), "--out", str(tmp / "e"), "--int8", "--calib-data", v], "cannot tell the dataset format"),
        (["export", str(run), "--out", str(tmp / "e2"), "--int8", "--calib-manifest", s], "expected 'IMAGE<TAB>LABEL'"),
        (["evaluate", v], "not a training run"),
        (["evaluate", str(run), "--data", v], "cannot tell the dataset format"),
        (["evaluate", str(run), "--json", v], "is a folder; give a file name"),
        (["evaluate", str(model), "--overlays", str(tmp / "o.png")], "--overlays draws a Keras run"),
        (["run", v, "--source", str(synth / "val" / "images")], "is a folder, not a model file"),
        (["run", str(model), "--source", v], "no images in"),
        (["run", str(model), "--source", str(synth / "val" / "images"), "--save", v], "is a folder; give a file name"),
        (["run", str(model), "--source", str(synth / "val" / "images"), "--stats-json", v], "is a folder"),
        (["run", str(model), "--source", str(synth / "val" / "images"), "--labels", s], "--labels: folder not found"),
        (["run", s, "--source", str(synth / "val" / "images")], "not a TFLite model"),
        (["benchmark", v], "is a folder, not a model file"),
        (["benchmark", str(model), "--json", v], "is a folder; give a file name"),
    ]


def test_every_path_command_leaves_a_users_folder_intact(victim, run_dir, exported, synth_root, tmp_path, capsys):
    model = Path(exported["files"]["int8"]["path"])
    before = snapshot(victim)
    for argv, expected in cases(victim, run_dir, synth_root, model, tmp_path):
        code = main(argv)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("edgeseg: error:")]
        assert code != 0, argv
        assert len(lines) == 1 and expected in lines[0], (argv, err[-2000:])
        assert snapshot(victim) == before, argv
    assert (victim / "sentinel.txt").read_text() == "precious\n"


def test_synthetic_generation_goes_only_into_new_empty_or_its_own_folders(tmp_path):
    from edgeseg.data import synthetic
    from edgeseg.core.errors import DataError

    counts = {"train": 1, "val": 1}
    new = synthetic.generate(tmp_path / "new", counts, size=(32, 32))
    (tmp_path / "empty").mkdir()
    synthetic.generate(tmp_path / "empty", counts, size=(32, 32))
    again = synthetic.generate(new, {"train": 2, "val": 1}, size=(32, 32))  # its own: replaced
    assert len(list((again / "train" / "images").iterdir())) == 2
    assert oct(os.stat(new).st_mode & 0o777) == oct(0o777 & ~_umask())
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "a.txt").write_text("x")
    with pytest.raises(DataError, match="refusing"):
        synthetic.generate(tmp_path / "user", counts, size=(32, 32))
    with pytest.raises(DataError, match="refusing"):
        synthetic.ensure(tmp_path / "user")
    assert [p.name for p in (tmp_path / "user").iterdir()] == ["a.txt"]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _mask_png() -> bytes:
    """A 4x4 mask of id 0: detection reads a few masks of CamVid's and VOC's layouts."""
    import zlib

    raw = b"".join(b"\x00" + bytes(4) for _ in range(4))
    chunk = lambda kind, data: (len(data).to_bytes(4, "big") + kind + data  # noqa: E731
                                + zlib.crc32(kind + data).to_bytes(4, "big"))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", (4).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0]))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


MASK = _mask_png()


@pytest.mark.parametrize("layout, expected", [
    ({"train/images/0001TP_a.jpg": b"", "train/labels/0001TP_a.png": MASK}, "camvid"),
    ({"train/a.png": b"", "trainannot/a.png": MASK}, "camvid"),
    ({"leftImg8bit/train/x/a_leftImg8bit.png": b"", "gtFine/train/x/a_gtFine_labelIds.png": b""}, "cityscapes"),
    ({"JPEGImages/a.jpg": b"", "SegmentationClass/a.png": MASK, "ImageSets/Segmentation/train.txt": b"a"}, "voc"),
    ({"classes.txt": b"a\nb\n", "train/images/a.jpg": b"", "train/masks/a.png": b""}, "folder"),
    ({"classes.txt": b"a\nb\n", "images/a.jpg": b"", "masks/a.png": b"", "train.txt": b"a"}, "folder"),
    ({"classes.txt": b"a\nb\n", "train/images/a.jpg": b"", "train/masks/a.png": b"", "synthetic.json": b"{}"}, "synthetic"),
    ({"dataset.json": b"{}", "train-00000-of-00001.tfrecord": b""}, "tfrecord"),
])
def test_format_is_detected_from_the_layout(tmp_path, layout, expected):
    from edgeseg.data import detect_format

    for rel, data in layout.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    assert detect_format(tmp_path) == expected


def test_training_on_a_camvid_layout_without_format_detects_it(tmp_path, synth_root):
    """`edgeseg train --data DIR` on a CamVid-layout folder trains on it, saying what it found."""
    import shutil

    root = tmp_path / "camvid"
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for image in sorted((synth_root / split / "images").iterdir())[:4]:  # under CamVid's frame names
            shutil.copy(image, root / split / "images" / f"0001TP_{image.name}")
            shutil.copy(synth_root / split / "masks" / f"{image.stem}.png", root / split / "labels" / f"0001TP_{image.stem}.png")
    before = snapshot(root)
    from conftest import run_edgeseg

    result = run_edgeseg("train", "--data", root, "--run-dir", tmp_path / "run", "--alpha", "0.35", "--crop-size",
                         "64x64", "--batch-size", "2", "--epochs", "1", "--steps-per-epoch", "2",
                         "--aspp-filters", "8", "--decoder-filters", "8")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{root}: detected dataset format 'camvid' (11 classes: sky, building," in result.stderr
    assert "format: camvid" in (tmp_path / "run" / "config.yaml").read_text()
    assert snapshot(root) == before
