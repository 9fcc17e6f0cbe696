"""Losses: (class-weighted) cross-entropy, plus soft Dice (``hybrid``) or Lovasz-softmax (``lovasz``).

All skip ignore pixels. Logits are ``(N, H, W, C)``, labels ``(N, H, W)`` int train ids.
"""

from __future__ import annotations

from edgeseg._tf import keras, tf
from edgeseg.core.labels import IGNORE_LABEL

REGION_TERMS = ("dice", "lovasz")
LOVASZ_STRIDE = 4  # every 4th pixel each way: the decoder's grid spacing (the logits are upsampled x4 from it)


class SegmentationLoss(keras.losses.Loss):
    """Weighted cross-entropy, optionally plus a region term: ``ce + dice_weight * region``.

    Args:
        num_classes: number of classes (labels outside ``0..num_classes-1`` are ignored).
        class_weights: per-class CE weights, or ``None`` for plain CE.
        dice_weight: weight of the region term; 0 for cross-entropy only.
        ignore_label: label value that counts nowhere.
        region: ``dice`` (soft Dice) or ``lovasz`` (Lovasz-softmax, Berman et al. 2018).

    Cross-entropy is averaged over the valid pixels' weights (so weights change the balance,
    not the scale). Dice is ``1 - mean_c (2 sum p*y + eps) / (sum p + sum y + eps)`` over the
    batch, for the classes present in the batch labels; Lovasz-softmax is the mean over the same
    classes of the Lovasz extension of the Jaccard loss ``1 - IoU_c``, over every
    ``LOVASZ_STRIDE``-th pixel of the batch in each direction.
    ``call`` returns the batch's scalar loss; under ``tf.distribute`` Keras averages it over replicas.
    """

    def __init__(self, num_classes: int, class_weights=None, dice_weight: float = 0.0,
                 ignore_label: int = IGNORE_LABEL, region: str = "dice", name: str = "segmentation_loss",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        if region not in REGION_TERMS:
            raise ValueError(f"region term must be one of {', '.join(REGION_TERMS)}, got '{region}'")
        self.num_classes = int(num_classes)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.dice_weight = float(dice_weight)
        self.ignore_label = int(ignore_label)
        self.region = region

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
            if self.region == "dice":
                region = soft_dice_loss(safe, logits, validf, self.num_classes)
            else:  # its per-class sort of every pixel would cost twice the network's step
                s = LOVASZ_STRIDE
                region = lovasz_softmax_loss(safe[:, ::s, ::s], logits[:, ::s, ::s], validf[:, ::s, ::s],
                                             self.num_classes)
            loss += self.dice_weight * region
        return loss

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "class_weights": self.class_weights, "dice_weight": self.dice_weight,
                "ignore_label": self.ignore_label, "region": self.region}


def soft_dice_loss(labels, logits, valid, num_classes: int, eps: float = 1.0):
    probs = tf.nn.softmax(logits) * valid[..., None]
    onehot = tf.one_hot(labels, num_classes) * valid[..., None]
    axes = tf.range(tf.rank(probs) - 1)
    inter = tf.reduce_sum(probs * onehot, axes)
    denom = tf.reduce_sum(probs, axes) + tf.reduce_sum(onehot, axes)
    dice = (2.0 * inter + eps) / (denom + eps)
    present = tf.cast(tf.reduce_sum(onehot, axes) > 0, tf.float32)
    return 1.0 - tf.reduce_sum(dice * present) / tf.maximum(tf.reduce_sum(present), 1.0)


def lovasz_softmax_loss(labels, logits, valid, num_classes: int):
    """Lovasz-softmax over the valid pixels of the batch, averaged over the classes present.

    Per class: the errors ``|y - p|`` sorted in decreasing order, dotted with the gradient of the
    Jaccard loss along that order (Berman, Rannen Triki, Blaschko, CVPR 2018, Alg. 1). With
    one-hot probabilities it equals ``1 - IoU`` of each class.
    """
    # Void pixels get error 0 (no probability, no label): they sort last and add nothing, and
    # every shape stays static (XLA-friendly), unlike gathering the valid pixels.
    mask = valid[..., None]
    probs = tf.reshape(tf.nn.softmax(logits) * mask, (-1, num_classes))  # (P, C)
    fg = tf.reshape(tf.one_hot(labels, num_classes) * mask, (-1, num_classes))
    errors = tf.transpose(tf.abs(fg - probs))  # (C, P)
    errors_sorted, order = tf.math.top_k(errors, k=tf.shape(errors)[1])
    fg_sorted = tf.gather(tf.transpose(fg), order, batch_dims=1)
    gts = tf.reduce_sum(fg_sorted, axis=1, keepdims=True)
    intersection = gts - tf.cumsum(fg_sorted, axis=1)
    union = gts + tf.cumsum(1.0 - fg_sorted, axis=1)
    jaccard = 1.0 - intersection / tf.maximum(union, 1.0)
    grad = tf.concat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], axis=1)
    per_class = tf.reduce_sum(errors_sorted * grad, axis=1)
    present = tf.cast(gts[:, 0] > 0, tf.float32)
    return tf.reduce_sum(per_class * present) / tf.maximum(tf.reduce_sum(present), 1.0)
