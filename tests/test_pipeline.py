"""The tf.data pipeline: shapes, ignore padding, determinism, TFRecords, palette decoding."""

import numpy as np
import pytest

from conftest import write_palette_png
from edgeseg._tf import tf
from edgeseg.core.images import read_label
from edgeseg.core.labels import IGNORE_LABEL
from edgeseg.data import load_split, voc
from edgeseg.data.pipeline import (
    Augment, build_eval_dataset, build_train_dataset, decoded_dataset, load_source, write_tfrecords,
)


def test_train_batches_have_crop_shape_and_valid_labels(synth_root):
    split = load_split(synth_root, "synthetic", "train")
    ds = build_train_dataset(split, 4, Augment((48, 48), scale_range=(0.5, 2.0)))
    images, labels = next(iter(ds))
    assert images.shape == (4, 48, 48, 3) and images.dtype == tf.float32
    assert labels.shape == (4, 48, 48) and labels.dtype == tf.int32
    values = set(np.unique(labels.numpy()).tolist())
    assert values <= set(range(split.info.num_classes)) | {IGNORE_LABEL}
    assert float(tf.reduce_max(images)) <= 255.0


def test_downscaled_frames_are_padded_with_ignore(synth_root):
    split = load_split(synth_root, "synthetic", "train")
    # scale 0.5 of 64x64 -> 32x32 content inside a 48x48 crop: the rest must be ignore
    ds = build_train_dataset(split, 2, Augment((48, 48), scale_range=(0.5, 0.5), flip=False))
    _, labels = next(iter(ds))
    ignored = (labels.numpy() == IGNORE_LABEL).mean()
    assert ignored == pytest.approx(1 - (32 * 32) / (48 * 48), abs=0.02)


def test_deterministic_option_repeats_batches(synth_root):
    split = load_split(synth_root, "synthetic", "train")
    aug = Augment((32, 32))
    first = [b[1].numpy() for b in build_train_dataset(split, 2, aug, seed=3, deterministic=True).take(3)]
    again = [b[1].numpy() for b in build_train_dataset(split, 2, aug, seed=3, deterministic=True).take(3)]
    other = [b[1].numpy() for b in build_train_dataset(split, 2, aug, seed=4, deterministic=True).take(3)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_eval_pads_to_size_and_keeps_labels(synth_root):
    split = load_split(synth_root, "synthetic", "val")
    images, labels = next(iter(build_eval_dataset(split, 4, (80, 64))))
    assert images.shape == (4, 80, 64, 3)
    truth, _ = read_label(split.items[0][1], split.info.label_map)
    assert np.array_equal(labels.numpy()[0, :64], truth)
    assert (labels.numpy()[:, 64:] == IGNORE_LABEL).all()


def test_tfrecords_round_trip_matches_files(synth_root, tmp_path):
    split = load_split(synth_root, "synthetic", "val")
    files = write_tfrecords(split, tmp_path, shard_size=3)
    assert len(files) == 2
    source = load_source(tmp_path, "tfrecord", "val")
    assert source.count == 4 and source.info.class_names == split.info.class_names
    def frames(ds):  # interleaved shards come in another order: compare as sorted sets
        return sorted((i.numpy().tobytes(), l.numpy().tobytes()) for i, l in ds)

    from_files, from_records = frames(decoded_dataset(split)), frames(decoded_dataset(source))
    assert len(from_files) == 4 and from_files == from_records


def test_voc_palette_decoding_in_tf_matches_numpy(tmp_path):
    (tmp_path / "ImageSets/Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets/Segmentation/train.txt").write_text("x\n")
    (tmp_path / "JPEGImages").mkdir()
    import cv2

    cv2.imwrite(str(tmp_path / "JPEGImages/x.jpg"), np.zeros((4, 5, 3), np.uint8))
    (tmp_path / "SegmentationClass").mkdir()
    idx = np.array([[0, 1, 2, 255, 20]] * 4, np.uint8)
    write_palette_png(tmp_path / "SegmentationClass/x.png", idx, voc.voc_colormap())
    split = load_split(tmp_path, "voc", "train")
    _, label = next(iter(decoded_dataset(split)))
    assert label.numpy()[0].tolist() == [0, 1, 2, IGNORE_LABEL, 20]


def test_mixed_in_frames_make_up_their_share_of_the_batches(synth_root, tmp_path):
    import cv2

    from edgeseg.core.collection import prepare

    old = tmp_path / "old"  # black frames, easy to tell from the synthetic ones
    prepare(old, load_split(synth_root, "synthetic", "train").info.class_names,
            load_split(synth_root, "synthetic", "train").info.colors)
    for i in range(4):
        cv2.imwrite(str(old / "train" / "images" / f"{i}.jpg"), np.zeros((64, 64, 3), np.uint8))
        cv2.imwrite(str(old / "train" / "masks" / f"{i}.png"), np.zeros((64, 64), np.uint8))
    new = load_split(synth_root, "synthetic", "train")
    augment = Augment((64, 64), scale_range=(1.0, 1.0), flip=False)
    shares = {}
    for share in (0.25, 0.75):
        ds = build_train_dataset(new, 8, augment, mix=(load_split(old, "folder", "train"), share), seed=3)
        images = np.concatenate([b.numpy() for b, _ in ds.take(25)])
        shares[share] = float(np.mean(images.reshape(len(images), -1).max(1) < 1))
    assert shares[0.25] == pytest.approx(0.25, abs=0.1) and shares[0.75] == pytest.approx(0.75, abs=0.1)
