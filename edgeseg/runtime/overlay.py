"""Drawing: class colours blended over the frame, a legend, and the status text."""

from __future__ import annotations

import numpy as np


def palette(colors) -> np.ndarray:
    table = np.zeros((256, 3), np.uint8)
    table[: len(colors)] = np.asarray(colors, np.uint8)
    return table


def blend(frame: np.ndarray, labels: np.ndarray, table: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """RGB frame with the label colours blended in (OpenCV LUT + addWeighted: SIMD, no floats)."""
    import cv2

    lut = table.reshape(256, 1, 3)
    colored = cv2.LUT(cv2.merge([labels, labels, labels]), lut)
    return cv2.addWeighted(frame, 1.0 - alpha, colored, alpha, 0.0)


def draw_legend(image: np.ndarray, class_names, colors, present=None) -> np.ndarray:
    """A legend in the top-right corner (only the classes ``present``, when given)."""
    import cv2

    idx = [i for i in range(len(class_names)) if present is None or present[i]]
    if not idx:
        return image
    w = 12 + 8 * max(len(class_names[i]) for i in idx) + 22
    h0 = 6
    x0 = max(image.shape[1] - w - 6, 0)
    cv2.rectangle(image, (x0, h0), (x0 + w, h0 + 16 * len(idx) + 6), (0, 0, 0), -1)
    for k, i in enumerate(idx):
        y = h0 + 6 + 16 * k
        cv2.rectangle(image, (x0 + 6, y), (x0 + 18, y + 11), tuple(int(c) for c in colors[i]), -1)
        cv2.putText(image, class_names[i], (x0 + 24, y + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return image


def draw_status(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    cv2.putText(image, text, (8, image.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, (8, image.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return image
