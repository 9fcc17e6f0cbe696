"""The training recipe's parts: the device's pixels in training, photometric augmentation,
rare-class crops, held-out selection with the val split scored once, weight averaging."""

import fnmatch
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeseg.core.images import read_image
from edgeseg.data import load_split
from edgeseg.data.augment import Augment, photometric
from edgeseg.data.pipeline import build_train_dataset, decode_image_file


def test_training_decodes_jpeg_exactly_as_the_device(synth_root, tmp_path):
    for path in sorted((synth_root / "train" / "images").glob("*.jpg"))[:4]:
        assert np.array_equal(decode_image_file(path), read_image(path))
    textured = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    path = tmp_path / "noise.jpg"
    cv2.imwrite(str(path), textured, [cv2.IMWRITE_JPEG_QUALITY, 70])  # hard for an IDCT
    assert np.array_equal(decode_image_file(path), read_image(path))


def test_photometric_changes_pixels_within_range_and_is_reproducible():
    from edgeseg._tf import tf

    image = tf.constant(np.random.default_rng(1).uniform(0, 255, (64, 64, 3)).astype(np.float32))
    outs = [photometric(image, tf.constant([7, i], tf.int64)).numpy() for i in range(12)]
    again = photometric(image, tf.constant([7, 0], tf.int64)).numpy()
    assert np.array_equal(outs[0], again)
    assert all(o.min() >= 0 and o.max() <= 255 for o in outs)
    changed = [np.abs(o - image.numpy()).mean() for o in outs]
    assert sum(c > 0.5 for c in changed) >= 8  # most draws change something


def test_rare_class_crops_contain_the_rare_class(synth_root):
    split = load_split(synth_root, "synthetic", "train")
    pole = split.info.class_names.index("pole")
    kinds = {}
    for prob in (0.0, 1.0):
        aug = Augment((32, 32), (1.0, 1.0), flip=False, rare_classes=(pole,), rare_crop_prob=prob)
        ds = build_train_dataset(split, 16, aug, cache=False, seed=3)
        labels = np.concatenate([y.numpy() for _, y in ds.take(4)])
        kinds[prob] = np.mean([(crop == pole).any() for crop in labels])
    frames_with_pole = np.mean([(cv2.imread(str(lbl), 0) == pole).any() for _, lbl in split.items])
    assert kinds[1.0] >= 0.99 * frames_with_pole and kinds[1.0] > kinds[0.0]


def test_holdout_selects_and_val_is_scored_once_with_the_shipped_weights(synth_root, tmp_path, monkeypatch):
    from edgeseg.config import TrainConfig
    from edgeseg.rundir import RunDir
    from edgeseg.train import train

    plain = TrainConfig().override(
        data__root=str(synth_root), data__crop_size=[64, 64], data__batch_size=4,
        model__alpha=0.35, model__aspp_filters=16, model__decoder_filters=16, optim__epochs=2,
        optim__steps_per_epoch=3, optim__ema=0.9, ship="last")
    cfg = plain.override(data__holdout="0000[0-3]")
    summary = train(cfg, tmp_path / "run", verbose=0)
    assert summary["shipped"] == "last.h5" and RunDir(tmp_path / "run").weights().name == "last.h5"
    report = summary["report"]
    assert report["split"] == "val" and report["weights"] == "last.h5" and 0 <= report["miou"] <= 1
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["report"]["miou"] == report["miou"]
    # the held-out frames scored with the shipped weights: the last validation's score, rare classes beside it
    held = summary["holdout"]
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    last_val = float(dict(zip(history[0].split(","), history[-1].split(",")))["val_miou"])
    assert held["split"] == "0000[0-3]" and held["weights"] == "last.h5" and held["miou"] == pytest.approx(last_val, abs=1e-4)
    assert held["rare_classes"] and (held["rare_class_mean"] is None or 0 <= held["rare_class_mean"] <= 1)
    with pytest.raises(Exception, match="matches no frame"):
        load_split(synth_root, "synthetic", "train").partition("nothing*")
    # quantizing the run never looks at the held-out frames: not PTQ calibration, not QAT's batches
    from edgeseg.export.exporter import ExportOptions, export_run
    from edgeseg.quant import qat
    from edgeseg.quant.calibrate import read_manifest

    report = export_run(tmp_path / "run", ExportOptions(formats=("int8",), out_dir=tmp_path / "x", calib_size=16))
    calibrated = [Path(i).stem for i, _ in read_manifest(Path(report["calibration"]["manifest"]), synth_root)]
    assert len(calibrated) == 12 and not [n for n in calibrated if fnmatch.fnmatch(n, "0000[0-3]")]
    both = export_run(tmp_path / "run", ExportOptions(formats=("int8",), out_dir=tmp_path / "tv", calib_size=64,
                                                      calib_split="train,val"))  # several splits: still filtered
    calibrated = [Path(i).stem for i, _ in read_manifest(Path(both["calibration"]["manifest"]), synth_root)]
    # the held-out train frames are left out although the split is not just "train" (the generated val
    # frames are named 00000-00003 too, so the glob drops them as well: 12 train frames remain)
    assert len(calibrated) == 12 and not [n for n in calibrated if fnmatch.fnmatch(n, "0000[0-3]")]
    from edgeseg.core.errors import ConfigError
    from edgeseg.quant.calibrate import write_manifest

    full = load_split(synth_root, "synthetic", "train")
    leaky = write_manifest(tmp_path / "leaky.txt", full, full.items[:4], "first", 0)
    with pytest.raises(ConfigError, match="lists frames the run held out of training"):
        export_run(tmp_path / "run", ExportOptions(formats=("int8",), out_dir=tmp_path / "y", calib_manifest=leaky))
    assert not (tmp_path / "y").exists() or not list((tmp_path / "y").glob("*.tflite"))
    seen = []

    def no_training(src, *args, **kwargs):
        seen.extend(Path(i).stem for i, _ in src.items)
        raise RuntimeError("stop here")

    monkeypatch.setattr("edgeseg.data.pipeline.build_train_dataset", no_training)
    with pytest.raises(RuntimeError, match="stop here"):
        qat.qat_finetune(tmp_path / "run", steps=1)
    assert len(seen) == 12 and not [n for n in seen if fnmatch.fnmatch(n, "0000[0-3]")]
    # no holdout, last weights shipped: val only watched the run, and is reported for them
    summary = train(plain.override(optim__epochs=1), tmp_path / "watched", verbose=0)
    assert summary["report"]["weights"] == "last.h5" and summary["report"]["split"] == "val"
    assert summary["report"]["miou"] == pytest.approx(summary["val_miou"])  # the one validation, same weights
    summary = train(plain.override(optim__epochs=1, ship="best"), tmp_path / "selected", verbose=0)
    assert "report" not in summary  # val selected the checkpoint: no score nothing was selected on


def test_weight_average_covers_batchnorm_statistics_and_ends_in_the_model():
    """The average of every weight (BatchNorm's moving statistics too), with the warm-up
    momentum min(m, (1+n)/(10+n)); the model ends training holding it."""
    from edgeseg._tf import keras
    from edgeseg.train.callbacks import WeightAverage

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization(momentum=0.5)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    x = np.random.default_rng(0).normal(size=(24, 4)).astype(np.float32)
    y = np.random.default_rng(1).normal(size=(24, 3)).astype(np.float32)
    average = WeightAverage(0.9)
    history = []

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            history.append([w.copy() for w in self.model.get_weights()])

        def on_train_batch_end(self, batch, logs=None):
            history.append([w.copy() for w in self.model.get_weights()])

    seen = {}

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen["averaged"], seen["raw"] = average.averaged(), self.model.get_weights()

    model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False, callbacks=[Record(), average, Probe()])
    expected = history[0]
    for n, weights in enumerate(history[1:], start=1):  # 3 steps
        m = min(0.9, (1 + n) / (10 + n))
        expected = [m * e + (1 - m) * w for e, w in zip(expected, weights)]
    names = [w.name for w in model.weights]
    assert any("moving_mean" in n for n in names)
    for name, got, want, raw in zip(names, seen["averaged"], expected, seen["raw"]):
        assert np.allclose(got, want, atol=1e-6), name
        if "moving" in name or "kernel" in name:
            assert not np.allclose(got, raw), name  # the statistics are averaged, not copied
    for final, got in zip(model.get_weights(), seen["averaged"]):
        assert np.allclose(final, got)


def test_copy_paste_moves_rare_pixels_and_their_labels_from_the_next_crop():
    from edgeseg._tf import tf
    from edgeseg.data.augment import Augment, copy_paste_fn

    labels = np.zeros((3, 8, 8), np.int32)
    labels[1, 2:4, 2:4] = 3  # a rare object in crop 1, a common class 1 in crop 2
    labels[2, :, :4] = 1
    images = np.stack([np.full((8, 8, 3), v, np.float32) for v in (10, 20, 30)])
    paste = copy_paste_fn(Augment((8, 8), rare_classes=(3,), copy_paste=1.0))
    out_images, out_labels = (t.numpy() for t in paste(tf.constant(0, tf.int64), tf.constant(images), tf.constant(labels),
                                                        tf.constant(5, tf.int64)))
    # crop 2 received crop 1's object (tf.roll by one: crop i's donor is crop i-1)
    assert (out_labels[2, 2:4, 2:4] == 3).all() and (out_images[2, 2:4, 2:4] == 20).all()
    assert (out_labels[2, 4:, :4] == 1).all() and (out_images[2, 4:, 4:] == 30).all()
    assert np.array_equal(out_labels[0], labels[0]) and np.array_equal(out_labels[1], labels[1])  # no rare donor
    none = copy_paste_fn(Augment((8, 8), rare_classes=(3,), copy_paste=0.0))
    kept, _ = none(tf.constant(0, tf.int64), tf.constant(images), tf.constant(labels), tf.constant(5, tf.int64))
    assert np.array_equal(kept.numpy(), images)


def test_camera_shift_changes_colours_within_range():
    from edgeseg._tf import tf
    from edgeseg.data.augment import camera_shift

    image = tf.constant(np.random.default_rng(0).uniform(0, 255, (16, 16, 3)).astype(np.float32))
    shifted = [camera_shift(image, tf.constant([s, 1], tf.int64)).numpy() for s in range(12)]
    assert all(x.shape == (16, 16, 3) and x.min() >= 0 and x.max() <= 255 for x in shifted)
    changed = [np.abs(x - image.numpy()).mean() > 1 for x in shifted]
    assert any(changed) and not all(changed)  # each shift is taken with some probability
