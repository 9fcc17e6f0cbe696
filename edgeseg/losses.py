"""Losses: (class-weighted) cross-entropy and the hybrid cross-entropy + soft Dice.

Both skip ignore pixels. Logits are ``(N, H, W, C)``, labels ``(N, H, W)`` int train ids.
"""

from __future__ import annotations

from edgeseg._tf import keras, tf
from edgeseg.core.labels import IGNORE_LABEL



class SegmentationLoss(keras.losses.Loss):
    """Weighted cross-entropy, optionally plus soft Dice: ``ce + dice_weight * dice``.

    Args:
        num_classes: number of classes (labels outside ``0..num_classes-1`` are ignored).
        class_weights: per-class CE weights, or ``None`` for plain CE.
        dice_weight: weight of the soft Dice term; 0 for cross-entropy only.
        ignore_label: label value that counts nowhere.

    Cross-entropy is averaged over the valid pixels' weights (so weights change the balance,
    not the scale). Dice is ``1 - mean_c (2 sum p*y + eps) / (sum p + sum y + eps)`` over the
    batch, for the classes present in the batch labels. ``call`` returns the batch's scalar
    loss; under ``tf.distribute`` Keras averages it over replicas.
    """

    def __init__(self, num_classes: int, class_weights=None, dice_weight: float = 0.0,
                 ignore_label: int = IGNORE_LABEL, name: str = "segmentation_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.dice_weight = float(dice_weight)
        self.ignore_label = int(ignore_label)

    def call(self, y_true, y_pred):
        labels = tf.cast(tf.reshape(y_true, tf.shape(y_pred)[:-1]), tf.int32)
        logits = tf.cast(y_pred, tf.float32)
        valid = tf.logical_and(labels >= 0, labels < self.num_classes)
        safe = tf.where(valid, labels, 0)
        validf = tf.cast(valid, tf.float32)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
        weights = validf
        if self.class_weights is not None:
            weights = weights * tf.gather(tf.constant(self.class_weights, tf.float32), safe)
        loss = tf.reduce_sum(ce * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)
        if self.dice_weight:
            loss += self.dice_weight * soft_dice_loss(safe, logits, validf, self.num_classes)
        return loss

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "class_weights": self.class_weights, "dice_weight": self.dice_weight,
                "ignore_label": self.ignore_label}


def soft_dice_loss(labels, logits, valid, num_classes: int, eps: float = 1.0):
    probs = tf.nn.softmax(logits) * valid[..., None]
    onehot = tf.one_hot(labels, num_classes) * valid[..., None]
    axes = tf.range(tf.rank(probs) - 1)
    inter = tf.reduce_sum(probs * onehot, axes)
    denom = tf.reduce_sum(probs, axes) + tf.reduce_sum(onehot, axes)
    dice = (2.0 * inter + eps) / (denom + eps)
    present = tf.cast(tf.reduce_sum(onehot, axes) > 0, tf.float32)
    return 1.0 - tf.reduce_sum(dice * present) / tf.maximum(tf.reduce_sum(present), 1.0)
