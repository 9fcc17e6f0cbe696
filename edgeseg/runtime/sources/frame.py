"""What every source yields (:class:`Frame`), what a source that cannot be read raises
(:class:`SourceError`), and OpenCV's capture opened or refused."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseg.core.errors import EdgesegError


class SourceError(EdgesegError, RuntimeError):
    """A source that does not exist or cannot be opened, in one line."""


@dataclass
class SourceCounts:
    """What a file or folder source met on its way, for the run's summary: frames it could not
    read (each said, skipped and counted)."""

    unreadable: int = 0


@dataclass
class Frame:
    """One frame as a source yields it: RGB pixels, a name for its outputs, its index."""

    image: np.ndarray  # RGB uint8
    name: str
    index: int
    captured: float  # time.perf_counter() when read
    capture_ms: float = 0.0
    sensor: object = None  # what a camera computed with the frame (the IMX500's output tensors and ROI)


def open_capture(spec):
    """``cv2.VideoCapture(spec)`` if it opens, else None."""
    import cv2

    cap = cv2.VideoCapture(spec)
    if not cap.isOpened():
        cap.release()
        return None
    return cap
