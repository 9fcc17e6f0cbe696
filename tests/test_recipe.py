"""The training recipe's parts: the device's pixels in training, photometric augmentation,
rare-class crops, held-out selection with the val split scored once, weight averaging."""

import json

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


def test_holdout_selects_and_val_is_scored_once_with_the_shipped_weights(synth_root, tmp_path):
    from edgeseg.config import TrainConfig
    from edgeseg.rundir import RunDir
    from edgeseg.train import train

    cfg = TrainConfig().override(
        data__root=str(synth_root), data__crop_size=[64, 64], data__batch_size=4, data__holdout="0000[0-3]",
        model__alpha=0.35, model__aspp_filters=16, model__decoder_filters=16, optim__epochs=2,
        optim__steps_per_epoch=3, optim__ema=0.9, ship="last")
    summary = train(cfg, tmp_path / "run", verbose=0)
    assert summary["shipped"] == "last.h5" and RunDir(tmp_path / "run").weights().name == "last.h5"
    report = summary["report"]
    assert report["split"] == "val" and report["weights"] == "last.h5" and 0 <= report["miou"] <= 1
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["report"]["miou"] == report["miou"]
    with pytest.raises(Exception, match="matches no frame"):
        load_split(synth_root, "synthetic", "train").partition("nothing*")


def test_validation_uses_the_averaged_weights():
    from edgeseg._tf import keras
    from edgeseg.train.callbacks import ValidateAndCheckpoint

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
    model.compile(keras.optimizers.SGD(0.5, use_ema=True, ema_momentum=0.5), "mse")
    x, y = np.ones((8, 4), np.float32), np.zeros((8, 2), np.float32)
    before = [w.copy() for w in model.get_weights()]
    seen = {}

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):  # during training, before fit() swaps in the average
            probe = ValidateAndCheckpoint.__new__(ValidateAndCheckpoint)
            probe.model = self.model
            seen["averaged"], seen["raw"] = probe._weights(), self.model.get_weights()

    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[Probe()])  # one step
    for b, a, r in zip(before, seen["averaged"], seen["raw"]):
        assert np.allclose(a, 0.5 * b + 0.5 * r, atol=1e-6)  # momentum 0.5 after one step
        assert not np.allclose(a, r)
    for final, a in zip(model.get_weights(), seen["averaged"]):
        assert np.allclose(final, a)  # and the model ends with the average
