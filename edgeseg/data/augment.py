"""Training augmentation and the evaluation transform, as tf.data functions: DeepLab's random
scale / pad with ignore / random crop / flip, crops centred on rare classes, and what cameras and
decoders do to pixels (photometric)."""

from __future__ import annotations

from dataclasses import dataclass

from edgeseg._tf import tf
from edgeseg.core.geometry import PAD_VALUE
from edgeseg.core.labels import IGNORE_LABEL


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
        camera_shift: what differs between cameras and drives (see :func:`camera_shift`).
        copy_paste: the share of crops that get the rare-class pixels of another crop of the
            batch pasted over them, with their labels (Simple Copy-Paste, Ghiasi et al. 2021,
            on semantic masks).
    """

    crop_size: tuple[int, int]
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    base_scale: float = 1.0
    photometric: bool = False
    rare_classes: tuple[int, ...] = ()
    rare_crop_prob: float = 0.0
    camera_shift: bool = False
    copy_paste: float = 0.0


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


def camera_shift(image, seed):
    """What differs between cameras and drives, each with some probability: white balance (a
    gain per channel), gamma, and horizontal motion blur. ``image``: float32 RGB 0-255 with a
    static shape."""
    s = tf.random.experimental.stateless_split(seed, 7)
    u = lambda i, shape=(), lo=0.0, hi=1.0: tf.random.stateless_uniform(shape, s[i], lo, hi)  # noqa: E731
    apply = lambda p, i, fn, x: tf.cond(u(i) < p, lambda: fn(x), lambda: x)  # noqa: E731
    image = apply(0.5, 0, lambda x: x * u(1, [3], 0.8, 1.2), image)
    image = tf.clip_by_value(image, 0.0, 255.0)
    image = apply(0.5, 2, lambda x: 255.0 * tf.pow(x / 255.0, u(3, (), 0.7, 1.4)), image)

    def motion_blur(x):
        length = tf.random.stateless_uniform([], s[5], 1, 4, dtype=tf.int32) * 2 + 1  # 3, 5 or 7 pixels
        taps = tf.cast(tf.abs(tf.range(-3, 4)) <= length // 2, tf.float32)
        kernel = tf.tile((taps / tf.reduce_sum(taps))[None, :, None, None], [1, 1, 3, 1])
        return tf.nn.depthwise_conv2d(x[None], kernel, [1, 1, 1, 1], "SAME")[0]

    image = apply(0.2, 4, motion_blur, image)
    return tf.clip_by_value(image, 0.0, 255.0)


def copy_paste_fn(aug: Augment):
    """Batch -> batch: with probability ``aug.copy_paste`` a crop gets the rare-class pixels of
    the next crop in the batch pasted over it, labels with them."""
    rare = tf.constant(aug.rare_classes, tf.int32)

    def paste(index, images, labels, seed):
        s = tf.random.experimental.stateless_split(tf.stack([seed, index]), 1)
        donor_images, donor_labels = tf.roll(images, 1, axis=0), tf.roll(labels, 1, axis=0)
        mask = tf.reduce_any(donor_labels[..., None] == rare, -1)
        chosen = tf.random.stateless_uniform(tf.shape(labels)[:1], s[0]) < aug.copy_paste
        mask = tf.logical_and(mask, chosen[:, None, None])
        return tf.where(mask[..., None], donor_images, images), tf.where(mask, donor_labels, labels)
    return paste


def augment_fn(aug: Augment):
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
        if aug.camera_shift:
            image = camera_shift(image, tf.random.experimental.stateless_split(seeds[1], 1)[0])
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
