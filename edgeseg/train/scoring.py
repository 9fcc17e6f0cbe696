"""Scoring a trained Keras run: a streaming confusion matrix over padded evaluation frames (also
what validation during training uses), and a few predictions for the overlay grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeseg._tf import tf
from edgeseg.core import metrics
from edgeseg.core.errors import DataError
from edgeseg.core.metrics import Score


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


def predict_samples(model, dataset, count: int) -> list:
    """The first ``count`` (image, label, prediction) triples of ``dataset``."""
    predictor = make_predictor(model)
    samples = []
    for images, labels in dataset:
        preds = predictor(images).numpy()
        samples.extend(zip(images.numpy(), labels.numpy(), preds))
        if len(samples) >= count:
            break
    return samples[:count]


def score_run(run: Path, data=None, fmt: str | None = None, split: str = "val", eval_size=None,
              batch_size: int = 4, progress=None, overlay_samples: int = 0, frames: str | None = None):
    """Score a run directory (or a weights file inside one) on a split of its dataset, or of
    ``data`` (only its frames named by the glob ``frames``, when given). Returns the :class:`Score`, the dataset used (``root``, ``format``, ``colors``)
    and, with ``overlay_samples``, that many (image, label, prediction) triples."""
    from edgeseg.config import TrainConfig
    from edgeseg.data import resolve_format
    from edgeseg.data.base import frames_named
    from edgeseg.data.pipeline import build_eval_dataset, load_source, source_size
    from edgeseg.rundir import RunDir
    from edgeseg.models import load_run_model

    weights = None
    if run.is_file():
        weights, run = run, run.parent
    rd = RunDir(run).require()
    config = TrainConfig.load(rd.config)
    meta = json.loads(rd.dataset.read_text())
    d = config.data
    if data is None and split == d.val_split and d.val_data() != (d.root, d.format):
        data, fmt = d.val_data()  # a fine-tuning run: its val split is in the data it started from
    if fmt is None:
        fmt = resolve_format(data, None) if data is not None else meta["format"]
    root = data if data is not None else meta.get("root")
    source = frames_named(load_source(root, fmt, split), frames)
    if list(source.info.class_names) != meta["class_names"]:
        raise DataError(f"dataset classes {list(source.info.class_names)} differ from the run's {meta['class_names']}")
    size = tuple(eval_size or config.data.eval_size)
    model, _ = load_run_model(run, size, weights)
    dataset = build_eval_dataset(source, batch_size, size, config.data.base_scale)
    from edgeseg.data.pipeline import explain_error

    try:
        cm = confusion_over(model, dataset, len(meta["class_names"]), progress=progress)
        samples = predict_samples(model, dataset, overlay_samples) if overlay_samples else []
    except tf.errors.OpError as e:  # a file that does not read: one line naming it
        explained = explain_error(e, [source])
        if explained is None:
            raise
        raise explained from None
    score = Score(name=f"{run.name} (keras)", kind="keras", cm=cm, class_names=meta["class_names"],
                  frames=source_size(source), path=str(weights or rd.weights()))
    return score, {"root": root, "format": fmt, "colors": meta["colors"]}, samples
