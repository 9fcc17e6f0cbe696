"""Loss and metrics: ignore handling, Dice, and numpy vs Keras mIoU agreement."""

import numpy as np
import pytest

from edgeseg._tf import tf
from edgeseg.core import metrics
from edgeseg.losses import SegmentationLoss
from edgeseg.train.keras_metrics import MeanIoU


def test_numpy_metrics_on_a_known_case():
    labels = np.array([0, 0, 1, 1, 2, 255])
    preds = np.array([0, 1, 1, 1, 0, 2])
    cm = metrics.confusion_matrix(labels, preds, 3)
    assert cm.sum() == 5  # the ignore pixel is skipped
    iou = metrics.per_class_iou(cm)
    np.testing.assert_allclose(iou, [1 / 3, 2 / 3, 0.0])
    assert metrics.mean_iou(cm) == pytest.approx(1 / 3)
    assert metrics.pixel_accuracy(cm) == pytest.approx(3 / 5)


def test_absent_class_does_not_count():
    cm = metrics.confusion_matrix(np.array([0, 1]), np.array([0, 1]), 4)
    assert metrics.mean_iou(cm) == 1.0
    assert np.isnan(metrics.per_class_iou(cm)[3])


def test_class_mean_averages_the_named_classes_present():
    cm = metrics.confusion_matrix(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), 4)
    per_class = metrics.summarize(cm, ["a", "b", "c", "d"])["per_class_iou"]
    assert per_class["d"] is None  # neither labelled nor predicted
    assert metrics.class_mean(per_class, ["b", "c", "d"]) == pytest.approx((2 / 3 + 0.0) / 2)
    assert metrics.class_mean(per_class, ["d"]) is None


def test_keras_metric_matches_numpy():
    rng = np.random.default_rng(0)
    metric = MeanIoU(5)
    cm = np.zeros((5, 5), np.int64)
    for _ in range(3):
        labels = rng.integers(0, 5, (2, 8, 8))
        labels[rng.random(labels.shape) < 0.2] = 255
        logits = rng.normal(size=(2, 8, 8, 5)).astype(np.float32)
        metric.update_state(labels, logits)
        cm += metrics.confusion_matrix(labels, logits.argmax(-1), 5)
    assert float(metric.result()) == pytest.approx(metrics.mean_iou(cm), abs=1e-9)
    np.testing.assert_array_equal(metric.cm.numpy(), cm)


def test_loss_ignores_ignore_pixels():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, (2, 6, 6))
    labels[:, :2] = 255
    logits = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
    changed = logits.copy()
    changed[:, :2] = rng.normal(size=changed[:, :2].shape) * 10
    for loss in (SegmentationLoss(3), SegmentationLoss(3, class_weights=[1, 2, 3], dice_weight=0.5)):
        assert float(loss(labels, logits)) == pytest.approx(float(loss(labels, changed)), rel=1e-5)


def test_class_weights_change_the_balance_and_dice_rewards_perfect_masks():
    labels = np.array([[[0, 0, 0, 1]]])
    logits = np.zeros((1, 1, 4, 2), np.float32)
    logits[..., 0] = 1.0  # predicts class 0 everywhere: wrong only on the class-1 pixel
    plain = float(SegmentationLoss(2)(labels, logits))
    weighted = float(SegmentationLoss(2, class_weights=[1.0, 10.0])(labels, logits))
    assert weighted > plain
    perfect = np.where(np.eye(2)[labels] > 0, 20.0, -20.0).astype(np.float32)
    assert float(SegmentationLoss(2, dice_weight=1.0)(labels, perfect)) < 1e-3


def test_lovasz_of_hard_predictions_is_one_minus_iou_per_class():
    # With one-hot probabilities the Lovasz extension is the Jaccard loss itself: compare it with
    # 1 - IoU from the numpy confusion matrix, over the classes present in the labels.
    from edgeseg.losses import lovasz_softmax_loss

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, (2, 7, 9))
    labels[0, :3] = 255
    preds = np.where(rng.random(labels.shape) < 0.6, labels, rng.integers(0, 4, labels.shape)) % 4
    logits = np.where(np.eye(4)[preds] > 0, 40.0, -40.0).astype(np.float32)
    valid = (labels != 255).astype(np.float32)
    got = float(lovasz_softmax_loss(np.where(labels == 255, 0, labels), logits, valid, 4))
    iou = metrics.per_class_iou(metrics.confusion_matrix(labels, preds, 4))
    present = [c for c in range(4) if np.any(labels == c)]
    assert got == pytest.approx(float(np.mean(1 - iou[present])), abs=1e-5)


def test_lovasz_loss_ignores_void_falls_with_better_logits_and_has_gradients():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, (2, 8, 8))
    labels[:, :2] = 255
    onehot = np.eye(3)[np.where(labels == 255, 0, labels)]
    noise = rng.normal(size=onehot.shape).astype(np.float32)
    loss = SegmentationLoss(3, class_weights=[1, 2, 3], dice_weight=0.5, region="lovasz")
    changed = noise.copy()
    changed[:, :2] = rng.normal(size=changed[:, :2].shape) * 10
    assert float(loss(labels, noise)) == pytest.approx(float(loss(labels, changed)), rel=1e-5)
    assert float(loss(labels, noise + 4 * onehot)) < float(loss(labels, noise))
    x = tf.Variable(noise)
    with tf.GradientTape() as tape:
        value = SegmentationLoss(3, dice_weight=1.0, region="lovasz")(labels, x)
    grad = tape.gradient(value, x).numpy()
    assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0
    assert np.abs(grad[:, :2]).max() == 0  # nothing flows from the void rows
    with pytest.raises(ValueError, match="region term"):
        SegmentationLoss(3, region="focal")
    # the loss is CE plus half the Lovasz term of every 4th pixel each way, and it survives its config
    from edgeseg.losses import LOVASZ_STRIDE, lovasz_softmax_loss

    s = LOVASZ_STRIDE
    ce = float(SegmentationLoss(3, class_weights=[1, 2, 3])(labels, noise))
    term = float(lovasz_softmax_loss(np.where(labels == 255, 0, labels)[:, ::s, ::s], noise[:, ::s, ::s],
                                     (labels != 255).astype(np.float32)[:, ::s, ::s], 3))
    assert term > 0.1 and float(loss(labels, noise)) == pytest.approx(ce + 0.5 * term, rel=1e-5)
    again = SegmentationLoss.from_config(loss.get_config())
    assert again.region == "lovasz" and float(again(labels, noise)) == pytest.approx(float(loss(labels, noise)))


def test_lovasz_is_chosen_by_the_config():
    from edgeseg.config import TrainConfig
    from edgeseg.core.errors import ConfigError
    from edgeseg.train.recipe import make_loss

    loss = make_loss(TrainConfig.from_dict({"loss": {"type": "lovasz", "class_weights": "none"}}), 3)
    assert (loss.region, loss.dice_weight) == ("lovasz", 0.5)
    assert make_loss(TrainConfig.from_dict({"loss": {"type": "ce", "class_weights": "none"}}), 3).dice_weight == 0
    with pytest.raises(ConfigError, match="--loss lovasz weighs the Lovasz term by --dice-weight"):
        TrainConfig.from_dict({"loss": {"type": "lovasz", "dice_weight": 0}})


def test_median_frequency_weights():
    w = metrics.class_weights([100, 10, 1, 0], "median_freq", max_weight=50)
    np.testing.assert_allclose(w[:3], [0.1, 1.0, 10.0])
    assert w[3] == 1.0  # an absent class keeps weight 1
    assert metrics.class_weights([1000, 1], "median_freq", max_weight=5).max() == 5


def test_confusion_matrix_refuses_predictions_outside_the_classes():
    from edgeseg.core.errors import DataError

    with pytest.raises(DataError, match="class 5 is outside the 4 classes"):
        metrics.confusion_matrix(np.array([0, 1, 2]), np.array([0, 5, 1]), 4)
    labels = np.array([0, 9, 255])  # labels out of range are skipped (void), not refused
    assert metrics.confusion_matrix(labels, np.array([0, 1, 2]), 4).sum() == 1
