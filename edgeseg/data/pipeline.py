"""The tf.data input pipeline: parallel decode, DeepLab augmentation, cache, shuffle, repeat,
batch, prefetch; from file lists or from sharded TFRecords.

Labels come out as train ids (uint8 -> int32) with ``IGNORE_LABEL`` for void and padding;
images as float32 RGB pixels in [0, 255] (the model normalises them itself).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path


import numpy as np

from edgeseg._tf import tf
from edgeseg.core.files import write_json_atomic
from edgeseg.core.errors import DataError
from edgeseg.core.images import read_label
from edgeseg.core.labels import DatasetInfo, LabelMap
from edgeseg.data.augment import Augment, augment_fn, copy_paste_fn, eval_transform
from edgeseg.data.base import Split

AUTOTUNE = tf.data.AUTOTUNE
TFRECORD_META = "dataset.json"


@dataclass
class TFRecordSplit:
    """A split stored as sharded TFRecords by ``edgeseg data tfrecords`` (labels already train ids)."""

    info: DatasetInfo
    files: list[str]
    count: int
    split: str = "train"


# --- decoding ---------------------------------------------------------------------------------

# Errors raised inside the pipeline carry this before their one line (which names the file), so
# that the TensorFlow error they end in can be told into that line (:func:`explain_error`).
FILE_ERROR = "edgeseg-file-error: "


def _decode_label_fn(label_map: LabelMap):
    """``label path -> uint8 train ids``, read by the same code as `data check` and the device
    (OpenCV): id PNGs of 8 or 16 bits, indexed PNGs, colour masks; unknown values -> ignore."""

    def read(path):
        try:
            return read_label(path.decode(), label_map)[0]
        except DataError as e:
            raise DataError(f"{FILE_ERROR}{e}") from None

    def decode(path):
        label = tf.numpy_function(read, [path], tf.uint8, stateful=False)
        label.set_shape([None, None])
        return label
    return decode


def _decode_image(data):
    """RGB uint8, decoded as the device decodes it: JPEG with libjpeg's accurate integer IDCT
    (what OpenCV uses). TensorFlow's default fast IDCT differs by a grey level or two (up to 17 on
    CamVid), enough to flip thin-class pixels between training and the device."""
    image = tf.cond(tf.io.is_jpeg(data),
                    lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
                    lambda: tf.io.decode_image(data, channels=3, expand_animations=False))
    image.set_shape([None, None, 3])
    return image


def decode_image_file(path) -> np.ndarray:
    """An image file as the training pipeline decodes it (RGB uint8)."""
    return _decode_image(tf.io.read_file(str(path))).numpy()


def _file_decoder(label_map: LabelMap):
    decode_label = _decode_label_fn(label_map)

    def decode(image_path, label_path):
        image = _decode_image(tf.io.read_file(image_path))
        label = decode_label(label_path)
        tf.debugging.assert_equal(
            tf.shape(image)[:2], tf.shape(label)[:2],
            message=tf.strings.join([FILE_ERROR, "image and label sizes differ: ", image_path, " and ", label_path,
                                     " (edgeseg data check names every such pair)\n"]))
        return image, label
    return decode


def explain_error(error: Exception, sources) -> DataError | None:
    """The one line a TensorFlow error met while reading ``sources`` (Splits) comes to: the file
    it names (a label that does not read, a pair of two sizes), or, for an image TensorFlow
    cannot decode, the first such image of the sources, found by decoding them again. None: not
    an error of the data."""
    import re

    message = getattr(error, "message", None) or str(error)
    found = re.search(re.escape(FILE_ERROR) + r"(.*?)(?:\\n|\n|\]|$)", message)
    if found:
        return DataError(found.group(1).strip())
    if not isinstance(error, (tf.errors.InvalidArgumentError, tf.errors.DataLossError)):
        return None
    if not re.search(r"jpeg|png|image|decode|Input is empty|Invalid data", message, re.IGNORECASE):
        return None
    said = re.search(r"(Invalid JPEG data[^\n\]]*|Invalid PNG[^\n\]]*|Unknown image file format[^\n\]]*|"
                     r"Input is empty[^\n\]]*|jpeg::Uncompress failed[^\n\]]*)", message)
    first = said.group(1).strip().rstrip(".") if said else "it does not decode"
    for source in sources:
        for image_path, _ in getattr(source, "items", ()):
            try:
                _decode_image(tf.io.read_file(str(image_path)))
            except (tf.errors.OpError, ValueError):
                return DataError(f"cannot decode image {image_path} (TensorFlow: {first}); "
                                 "remove or replace it (`edgeseg data check` checks every file)")
    return None


# --- datasets ---------------------------------------------------------------------------------

def decoded_dataset(source: Split | TFRecordSplit, deterministic: bool = True) -> tf.data.Dataset:
    """(uint8 image, uint8 train-id label) pairs, decoded in parallel."""
    if isinstance(source, TFRecordSplit):
        files = tf.data.Dataset.from_tensor_slices(source.files)
        ds = files.interleave(tf.data.TFRecordDataset, cycle_length=min(len(source.files), 8),
                              num_parallel_calls=AUTOTUNE, deterministic=deterministic)
        return ds.map(_parse_example, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = tf.data.Dataset.from_tensor_slices((source.image_paths, source.label_paths))
    return ds.map(_file_decoder(source.info.label_map), num_parallel_calls=AUTOTUNE,
                  deterministic=deterministic)


def source_size(source: Split | TFRecordSplit) -> int:
    return source.count if isinstance(source, TFRecordSplit) else len(source.items)


def build_train_dataset(source, batch_size: int, augment: Augment, *, cache: bool | str = True,
                        shuffle_buffer: int = 1024, seed: int = 0, deterministic: bool = False,
                        repeat: bool = True, mix=None) -> tf.data.Dataset:
    """Infinite (with ``repeat``) batches of augmented crops.

    Args:
        cache: ``True`` caches decoded frames in memory, a path caches them in files (for data
            larger than RAM), ``False`` decodes every epoch.
        deterministic: same batches in the same order on every run (slower: no reordering).
        mix: ``(other_source, share)``: that share of the frames drawn from another source (a
            fine-tuning run's old data, so the model does not forget it).
    """
    ds = _shuffled_frames(source, cache, shuffle_buffer, seed, deterministic, repeat)
    if mix is not None:
        other, share = mix
        other_cache = cache if not isinstance(cache, str) else f"{cache}-mix"
        ds = tf.data.Dataset.sample_from_datasets(
            [ds, _shuffled_frames(other, other_cache, shuffle_buffer, seed + 1, deterministic, repeat)],
            weights=[1.0 - share, share], seed=seed)
    ds = ds.enumerate()
    apply_augment = augment_fn(augment)
    ds = ds.map(lambda i, pair: apply_augment(i, pair[0], pair[1], tf.constant(seed, tf.int64)),
                num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=True)
    if augment.copy_paste > 0 and augment.rare_classes:
        paste = copy_paste_fn(augment)
        ds = ds.enumerate().map(lambda i, batch: paste(i, batch[0], batch[1], tf.constant(seed + 7, tf.int64)),
                                num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = ds.prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic
    return ds.with_options(options)


def _shuffled_frames(source, cache, shuffle_buffer: int, seed: int, deterministic: bool, repeat: bool):
    ds = decoded_dataset(source, deterministic)
    if cache:
        ds = ds.cache("" if cache is True else str(cache))
    ds = ds.shuffle(min(shuffle_buffer, max(source_size(source), 1)), seed=seed,
                    reshuffle_each_iteration=True)
    return ds.repeat() if repeat else ds


def build_eval_dataset(source, batch_size: int, size, base_scale: float = 1.0,
                       cache: bool = False) -> tf.data.Dataset:
    """Padded full frames in a fixed order, for validation and evaluation."""
    ds = decoded_dataset(source, deterministic=True)
    if cache:
        ds = ds.cache()
    ds = ds.map(eval_transform(size, base_scale), num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


# --- TFRecords --------------------------------------------------------------------------------

def _parse_example(record):
    features = tf.io.parse_single_example(record, {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.string),
    })
    image = _decode_image(features["image"])
    label = tf.io.decode_png(features["label"], channels=1)[..., 0]
    return image, label


def write_tfrecords(split: Split, out_dir: Path, shard_size: int = 256, progress=None) -> list[Path]:
    """Write ``split`` as ``OUT/SPLIT-00000-of-0000N.tfrecord`` shards, labels as train-id PNGs.

    Files are written under temporary names and renamed when complete.
    """
    import cv2

    out_dir.mkdir(parents=True, exist_ok=True)
    n_shards = max(1, math.ceil(len(split.items) / shard_size))
    written = []
    for s in range(n_shards):
        path = out_dir / f"{split.split}-{s:05d}-of-{n_shards:05d}.tfrecord"
        tmp = path.with_suffix(".tmp")
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for image_path, label_path in split.items[s * shard_size:(s + 1) * shard_size]:
                label, _ = read_label(label_path, split.info.label_map)
                ok, png = cv2.imencode(".png", label)
                example = tf.train.Example(features=tf.train.Features(feature={
                    "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_path.read_bytes()])),
                    "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png.tobytes()])),
                }))
                writer.write(example.SerializeToString())
                if progress:
                    progress()
        tmp.replace(path)
        written.append(path)
    meta_path = out_dir / TFRECORD_META
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta.update({
        "name": split.info.name, "class_names": list(split.info.class_names),
        "colors": [list(c) for c in split.info.colors],
    })
    meta.setdefault("counts", {})[split.split] = len(split.items)
    write_json_atomic(meta_path, meta)
    return written


def load_tfrecord_split(root: Path, split: str) -> TFRecordSplit:
    """Shards of a split, or of several joined with commas."""
    meta_path = Path(root) / TFRECORD_META
    if not meta_path.is_file():
        raise DataError(f"not a TFRecord dataset (no {TFRECORD_META}): {root}")
    meta = json.loads(meta_path.read_text())
    names = [s.strip() for s in split.split(",") if s.strip()]
    files = []
    for name in names:
        found = sorted(str(p) for p in Path(root).glob(f"{name}-*.tfrecord"))
        if not found or name not in meta.get("counts", {}):
            raise DataError(f"no TFRecord shards for split '{name}' in {root}")
        files += found
    n = len(meta["class_names"])
    info = DatasetInfo(
        name=meta["name"], class_names=tuple(meta["class_names"]),
        colors=tuple(tuple(c) for c in meta["colors"]),
        label_map=LabelMap.identity(n),
    )
    return TFRecordSplit(info=info, files=files, count=sum(int(meta["counts"][name]) for name in names), split=split)


def load_source(root, fmt: str, split: str, allow_unpaired: bool = False):
    """A split as file pairs, or as TFRecord shards when ``fmt == 'tfrecord'``; with
    ``allow_unpaired`` images without a label are kept aside in the Split (for the check before
    training to report with the rest) instead of an error."""
    if fmt == "tfrecord":
        if root is None or not Path(root).is_dir():
            raise DataError(f"dataset folder not found: {root}")
        return load_tfrecord_split(Path(root), split)
    from edgeseg.data import load_split

    return load_split(root, fmt, split, allow_unpaired)
