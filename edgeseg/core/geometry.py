"""How a frame of any size is fitted to a model's fixed input: the letterbox (scale down keeping
the aspect ratio, pad bottom/right) that evaluation, calibration and the runtime share, and sizes
written ``HxW``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseg.core.errors import ConfigError

PAD_VALUE = 127.5  # image padding: mid-grey, the mean of the normalised range
RESIZE_MODES = ("letterbox", "stretch")


def parse_size(value, name: str, order: str = "HxW") -> tuple[int, int]:
    """``"256x256"``, ``"256,256"``, ``[256, 256]`` or ``256`` -> its two numbers in the order
    written, both > 0: (height, width) for the options written HxW (every training and model
    size), (width, height) for ``order="WxH"`` (``--camera-size``, as cameras are described)."""
    words = "height x width, e.g. 360x480" if order == "HxW" else "width x height, e.g. 1280x720"
    text = value
    if isinstance(value, (int, float)):
        value = (value, value)
    if isinstance(value, str):
        value = value.lower().replace("x", ",").split(",")
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be {order} ({words}), got {text!r}") from None
    if a <= 0 or b <= 0:
        raise ConfigError(f"{name} must be positive, got {a}x{b} ({order})")
    return a, b


def round_up(v: int, m: int) -> int:
    return -(-v // m) * m


@dataclass(frozen=True)
class Letterbox:
    """Where a frame sits inside the model input: resized to ``height`` x ``width``, at the
    top-left (the rest is padding)."""

    scale: float  # of the height (letterbox: both axes)
    height: int  # scaled frame size inside the input
    width: int


def fit(frame: np.ndarray, size, mode: str = "letterbox") -> tuple[np.ndarray, Letterbox]:
    """``frame`` resized for an input of ``size``: ``letterbox`` keeps its aspect ratio and
    never enlarges it (the training pipeline's evaluation transform); ``stretch`` fills the
    input."""
    import cv2

    h, w = frame.shape[:2]
    H, W = size
    if mode == "stretch":
        nh, nw, scale = H, W, H / h
    elif mode == "letterbox":
        scale = min(1.0, H / h, W / w)
        nh, nw = int(round(h * scale)), int(round(w * scale))
    else:
        raise ValueError(f"resize mode must be one of {', '.join(RESIZE_MODES)}, got {mode!r}")
    resized = frame if (nh, nw) == (h, w) else cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return resized, Letterbox(scale, nh, nw)


def letterbox(frame: np.ndarray, size, pad_value: float = PAD_VALUE, mode: str = "letterbox") -> tuple[np.ndarray, Letterbox]:
    """Fit ``frame`` (HxWx3 RGB) into ``size`` (see :func:`fit`) and pad bottom/right (float32),
    as the training pipeline's evaluation transform does."""
    resized, box = fit(frame, size, mode)
    out = np.full((*size, 3), pad_value, np.float32)
    out[: box.height, : box.width] = resized
    return out, box
