"""Drawing: class colours blended over the frame, a legend, and the status text."""

from __future__ import annotations

import numpy as np


def blend(frame: np.ndarray, labels: np.ndarray, table: np.ndarray, alpha: float = 0.5,
          scratch: dict | None = None) -> np.ndarray:
    """RGB frame with the label colours blended in (OpenCV LUT + addWeighted: SIMD, no floats).

    ``scratch``: a dict the caller keeps between frames; the intermediate images are reused
    from it (fresh 1920x1080 buffers cost more in page faults than the LUT itself: 6.8 ms
    against 2.7 ms per frame). The returned image is always new, as its users keep it.
    One single-channel LUT per colour channel, merged: 1.7x faster than merging the labels
    into three channels and looking up a three-channel table (0.15 against 0.27 ms at 360x480).
    """
    import cv2

    shape = labels.shape + (3,)
    if scratch is None or scratch.get("shape") != shape:
        scratch = {} if scratch is None else scratch
        scratch.update(shape=shape, planes=[np.empty(labels.shape, np.uint8) for _ in range(3)],
                       colored=np.empty(shape, np.uint8))
    for channel, plane in enumerate(scratch["planes"]):
        cv2.LUT(labels, np.ascontiguousarray(table[:, channel]), dst=plane)
    cv2.merge(scratch["planes"], dst=scratch["colored"])
    return cv2.addWeighted(frame, 1.0 - alpha, scratch["colored"], alpha, 0.0)


class Legend:
    """A legend of the classes present in a frame, drawn in its top-right corner. Rendered
    legends are kept: the classes present change rarely from one frame to the next, and
    drawing text is a large part of the overlay's cost."""

    def __init__(self, class_names, colors):
        self.class_names, self.colors = list(class_names), colors
        self._patches: dict = {}

    def draw(self, image: np.ndarray, labels: np.ndarray) -> np.ndarray:
        import cv2

        # OpenCV's histogram: 7x faster than np.bincount on a 1280x720 label map
        present = cv2.calcHist([labels], [0], None, [256], [0, 256]).ravel()[: len(self.class_names)] > 0
        key = present.tobytes()
        if key not in self._patches:
            if len(self._patches) > 256:
                self._patches.clear()
            self._patches[key] = legend_patch(self.class_names, self.colors, present)
        patch = self._patches[key]
        if patch is not None and patch.shape[1] * 3 <= image.shape[1]:  # top-right corner, if it leaves room
            h, w = patch.shape[:2]
            x0 = max(image.shape[1] - w - 6, 0)
            w, h = min(w, image.shape[1] - x0), min(h, image.shape[0] - 6)
            image[6:6 + h, x0:x0 + w] = patch[:h, :w]
        return image


def legend_patch(class_names, colors, present=None) -> np.ndarray | None:
    """The legend box (RGB) for the classes ``present``; None when there is none to show."""
    import cv2

    idx = [i for i in range(len(class_names)) if present is None or present[i]]
    if not idx:
        return None
    w = 12 + 8 * max(len(class_names[i]) for i in idx) + 22
    patch = np.zeros((16 * len(idx) + 7, w + 1, 3), np.uint8)
    for k, i in enumerate(idx):
        y = 6 + 16 * k
        cv2.rectangle(patch, (6, y), (18, y + 11), tuple(int(c) for c in colors[i]), -1)
        cv2.putText(patch, class_names[i], (24, y + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return patch


def draw_status(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    cv2.putText(image, text, (8, image.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, (8, image.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return image
