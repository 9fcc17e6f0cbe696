"""Evaluation of a Keras model on a split: streaming confusion matrix, summary, overlay PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg import metrics
from edgeseg._tf import tf
from edgeseg.core.files import write_image_atomic


def make_predictor(model):
    @tf.function(reduce_retracing=True)
    def predict(images):
        return tf.argmax(model(images, training=False), axis=-1, output_type=tf.int32)
    return predict


def confusion_over(model, dataset, num_classes: int, predictor=None, progress=None) -> np.ndarray:
    """Accumulate the confusion matrix of ``model`` over ``(image, label)`` batches."""
    predictor = predictor or make_predictor(model)
    cm = np.zeros((num_classes, num_classes), np.int64)
    for images, labels in dataset:
        preds = predictor(images).numpy()
        cm += metrics.confusion_matrix(labels.numpy(), preds, num_classes)
        if progress:
            progress(int(images.shape[0]))
    return cm


def colorize(labels: np.ndarray, colors) -> np.ndarray:
    """RGB image of a label map; ignore pixels black."""
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(colors)] = np.asarray(colors, np.uint8)
    return palette[labels.astype(np.uint8)]


def overlay_grid(samples, colors, alpha: float = 0.5) -> np.ndarray:
    """Rows of image | ground truth | prediction (blended over the image)."""
    rows = []
    for image, label, pred in samples:
        image = np.clip(image, 0, 255).astype(np.uint8)
        gt = colorize(label, colors)
        pr = (alpha * colorize(pred, colors) + (1 - alpha) * image).astype(np.uint8)
        gap = np.full((image.shape[0], 4, 3), 255, np.uint8)
        rows.append(np.concatenate([image, gap, gt, gap, pr], axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(rows[:-1], axis=0)


def save_overlays(model, dataset, colors, path: Path, count: int = 4) -> Path:
    predictor = make_predictor(model)
    samples = []
    for images, labels in dataset:
        preds = predictor(images).numpy()
        for image, label, pred in zip(images.numpy(), labels.numpy(), preds):
            samples.append((image, label, pred))
            if len(samples) >= count:
                break
        if len(samples) >= count:
            break
    write_image_atomic(path, overlay_grid(samples, colors))
    return path
