"""Streaming mIoU as a Keras metric; same definition as :func:`edgeseg.core.metrics.mean_iou`."""

from __future__ import annotations

from edgeseg._tf import keras, tf


class MeanIoU(keras.metrics.Metric):
    """mIoU from a confusion matrix accumulated over batches, skipping ignore pixels.

    Classes absent from both labels and predictions do not count, as in the numpy version.
    Takes logits ``(N, H, W, C)`` and int labels ``(N, H, W)``.
    """

    def __init__(self, num_classes: int, name: str = "miou", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.cm = self.add_weight("confusion_matrix", shape=(num_classes, num_classes),
                                  initializer="zeros", dtype=tf.float64)

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = tf.reshape(tf.cast(y_true, tf.int32), [-1])
        preds = tf.reshape(tf.argmax(y_pred, axis=-1, output_type=tf.int32), [-1])
        valid = tf.logical_and(labels >= 0, labels < self.num_classes)
        cm = tf.math.confusion_matrix(tf.boolean_mask(labels, valid), tf.boolean_mask(preds, valid),
                                      num_classes=self.num_classes, dtype=tf.float64)
        self.cm.assign_add(cm)

    def per_class_iou(self):
        tp = tf.linalg.diag_part(self.cm)
        union = tf.reduce_sum(self.cm, 0) + tf.reduce_sum(self.cm, 1) - tp
        return tf.math.divide_no_nan(tp, union), union > 0

    def result(self):
        iou, present = self.per_class_iou()
        n = tf.reduce_sum(tf.cast(present, tf.float64))
        return tf.math.divide_no_nan(tf.reduce_sum(tf.where(present, iou, 0.0)), n)

    def reset_state(self):
        self.cm.assign(tf.zeros_like(self.cm))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}
