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
from edgeseg.core.geometry import PAD_VALUE
from edgeseg.core.images import read_label
from edgeseg.core.labels import IGNORE_LABEL, DatasetInfo, LabelMap
from edgeseg.data.base import Split

AUTOTUNE = tf.data.AUTOTUNE
TFRECORD_META = "dataset.json"


@dataclass(frozen=True)
class Augment:
    """Training augmentation as in DeepLab: random scale, pad with ignore, random crop, flip.

    Args:
        crop_size: (height, width) of the training crops.
        scale_range: random scale factor range (0.5-2.0 in the paper).
        flip: random horizontal flip.
        base_scale: a fixed resize applied before the random scale (e.g. 0.5 to train at half
            resolution on a CPU).
        photometric: what cameras and decoders do to pixels (see :func:`photometric`).
        rare_classes, rare_crop_prob: centre that share of the crops on a pixel of these classes.
    """

    crop_size: tuple[int, int]
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    base_scale: float = 1.0
    photometric: bool = False
    rare_classes: tuple[int, ...] = ()
    rare_crop_prob: float = 0.0


@dataclass
class TFRecordSplit:
    """A split stored as sharded TFRecords by ``edgeseg data tfrecords`` (labels already train ids)."""

    info: DatasetInfo
    files: list[str]
    count: int
    split: str = "train"


# --- decoding ---------------------------------------------------------------------------------

def _decode_label_fn(label_map: LabelMap):
    lut = tf.constant(label_map.id_lut())
    if not label_map.colors:
        def decode(data):
            raw = tf.io.decode_png(data, channels=1)[..., 0]
            return tf.gather(lut, tf.cast(raw, tf.int32))
        return decode

    table = label_map.color_table()
    hashed = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(table), tf.int32), tf.constant(list(table.values()), tf.int32)),
        default_value=IGNORE_LABEL)

    def decode(data):
        rgb = tf.cast(tf.io.decode_png(data, channels=3), tf.int32)
        keys = rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2]
        return tf.cast(hashed.lookup(keys), tf.uint8)
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
        label = decode_label(tf.io.read_file(label_path))
        tf.debugging.assert_equal(
            tf.shape(image)[:2], tf.shape(label)[:2],
            message=tf.strings.join(["image and label sizes differ: ", image_path]))
        return image, label
    return decode


# --- geometry ---------------------------------------------------------------------------------

def _resize_pair(image, label, size):
    image = tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear")
    label = tf.image.resize(label[..., None], size, method="nearest")[..., 0]
    return image, label


def _pad_to(image, label, height, width):
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    ph, pw = tf.maximum(height - h, 0), tf.maximum(width - w, 0)
    image = tf.pad(image - PAD_VALUE, [[0, ph], [0, pw], [0, 0]]) + PAD_VALUE
    label = tf.pad(tf.cast(label, tf.int32) - IGNORE_LABEL, [[0, ph], [0, pw]]) + IGNORE_LABEL
    return image, tf.cast(label, tf.uint8)


def _crop_origin(label, crop, seeds, aug: Augment):
    """Top-left corner of a random crop; with ``rare_crop_prob``, centred on a random pixel of
    a rare class when the frame has one."""
    ch, cw = crop
    h, w = tf.shape(label)[0], tf.shape(label)[1]
    offset = tf.random.stateless_uniform([2], seeds[0], 0, 2**30, dtype=tf.int32)
    uniform = tf.stack([offset[0] % (h - ch + 1), offset[1] % (w - cw + 1)])
    if not aug.rare_classes or aug.rare_crop_prob <= 0:
        return uniform
    rare = tf.reduce_any(tf.cast(label, tf.int32)[..., None] == tf.constant(aug.rare_classes, tf.int32), -1)
    where = tf.cast(tf.where(rare), tf.int32)
    n = tf.shape(where)[0]

    def centred():  # only taken when there is a rare pixel
        centre = where[tf.random.stateless_uniform([], seeds[1], 0, n, dtype=tf.int32)]
        return tf.stack([tf.clip_by_value(centre[0] - ch // 2, 0, h - ch), tf.clip_by_value(centre[1] - cw // 2, 0, w - cw)])

    use = tf.logical_and(n > 0, tf.random.stateless_uniform([], seeds[2]) < aug.rare_crop_prob)
    return tf.cond(use, centred, lambda: uniform)


def photometric(image, seed):
    """What cameras and decoders do to pixels, each with some probability: brightness, contrast
    and saturation changes, slight blur, JPEG re-encoding at a random quality, Gaussian noise.
    ``image``: float32 RGB 0-255 with a static shape."""
    s = tf.random.experimental.stateless_split(seed, 12)
    u = lambda i, lo=0.0, hi=1.0: tf.random.stateless_uniform([], s[i], lo, hi)  # noqa: E731
    apply = lambda p, i, fn, x: tf.cond(u(i) < p, lambda: fn(x), lambda: x)  # noqa: E731
    image = apply(0.5, 0, lambda x: x + u(1, -25.0, 25.0), image)
    image = apply(0.5, 2, lambda x: (x - tf.reduce_mean(x)) * u(3, 0.75, 1.25) + tf.reduce_mean(x), image)
    gray = lambda x: tf.reduce_mean(x, -1, keepdims=True)  # noqa: E731
    image = apply(0.5, 4, lambda x: gray(x) + (x - gray(x)) * u(5, 0.7, 1.3), image)
    image = tf.clip_by_value(image, 0.0, 255.0)

    def blur(x):
        sigma = u(7, 0.4, 1.0)
        taps = tf.exp(-tf.square(tf.range(-1.0, 2.0)) / (2 * sigma * sigma))
        kernel = tf.tensordot(taps, taps, 0) / tf.square(tf.reduce_sum(taps))
        kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
        return tf.nn.depthwise_conv2d(x[None], kernel, [1, 1, 1, 1], "SAME")[0]

    image = apply(0.2, 6, blur, image)
    image = apply(0.3, 8, lambda x: tf.image.stateless_random_jpeg_quality(
        tf.cast(tf.round(x), tf.uint8), 40, 95, seed=s[9]), tf.cast(tf.round(image), tf.uint8))
    image = tf.cast(image, tf.float32)
    image = apply(0.3, 10, lambda x: x + tf.random.stateless_normal(tf.shape(x), s[11]) * u(11, 1.0, 5.0), image)
    return tf.clip_by_value(image, 0.0, 255.0)


def _augment_fn(aug: Augment):
    ch, cw = aug.crop_size
    lo, hi = aug.scale_range

    def augment(index, image, label, seed):
        seeds = tf.random.experimental.stateless_split(tf.stack([seed, index]), 6)
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = aug.base_scale * tf.random.stateless_uniform([], seeds[0], lo, hi)
        image, label = _resize_pair(image, label, tf.cast(tf.round(shape * scale), tf.int32))
        image, label = _pad_to(image, label, ch, cw)
        y0, x0 = tf.unstack(_crop_origin(label, (ch, cw), seeds[3:6], aug))
        image = image[y0:y0 + ch, x0:x0 + cw]
        label = label[y0:y0 + ch, x0:x0 + cw]
        if aug.flip:
            flip = tf.random.stateless_uniform([], seeds[2]) < 0.5
            image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
            label = tf.cond(flip, lambda: label[:, ::-1], lambda: label)
        image.set_shape([ch, cw, 3])
        label.set_shape([ch, cw])
        if aug.photometric:
            image = photometric(image, seeds[1])
        return image, tf.cast(label, tf.int32)
    return augment


def eval_transform(size, base_scale: float = 1.0):
    """Resize to fit inside ``size`` keeping the aspect ratio (never upscaling beyond
    ``base_scale``), then pad bottom/right with the ignore label."""
    eh, ew = size

    def transform(image, label):
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = tf.minimum(base_scale, tf.minimum(eh / shape[0], ew / shape[1]))
        image, label = _resize_pair(image, label, tf.cast(tf.round(shape * scale), tf.int32))
        image, label = _pad_to(image, label, eh, ew)
        image.set_shape([eh, ew, 3])
        label.set_shape([eh, ew])
        return image, tf.cast(label, tf.int32)
    return transform


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
                        repeat: bool = True) -> tf.data.Dataset:
    """Infinite (with ``repeat``) batches of augmented crops.

    Args:
        cache: ``True`` caches decoded frames in memory, a path caches them in files (for data
            larger than RAM), ``False`` decodes every epoch.
        deterministic: same batches in the same order on every run (slower: no reordering).
    """
    ds = decoded_dataset(source, deterministic)
    if cache:
        ds = ds.cache("" if cache is True else str(cache))
    ds = ds.shuffle(min(shuffle_buffer, max(source_size(source), 1)), seed=seed,
                    reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.enumerate()
    augment_fn = _augment_fn(augment)
    ds = ds.map(lambda i, pair: augment_fn(i, pair[0], pair[1], tf.constant(seed, tf.int64)),
                num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic
    return ds.with_options(options)


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


def load_source(root, fmt: str, split: str):
    """A split as file pairs, or as TFRecord shards when ``fmt == 'tfrecord'``."""
    if fmt == "tfrecord":
        if root is None or not Path(root).is_dir():
            raise DataError(f"dataset folder not found: {root}")
        return load_tfrecord_split(Path(root), split)
    from edgeseg.data import load_split

    return load_split(root, fmt, split)
