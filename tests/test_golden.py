"""A change of numerics shows: the committed tiny models (tests/golden, made by
tools/maintenance/make_golden.py) must give exactly the committed masks on the committed frames, through
every upsampling mode, at the model's own size and at others (letterbox, upsampling). A failure
here means the runtime computes something else than it did: LiteRT, OpenCV's resize, the
letterbox, the int8 input table or the upsampling changed. If that was meant, regenerate the
files and say why in the commit."""

from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).with_name("golden")
CASES = sorted(p.relative_to(GOLDEN / "masks") for p in (GOLDEN / "masks").glob("*/*.png"))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_golden_masks(case):
    import cv2

    from edgeseg.runtime.model.segmenter import Segmenter

    precision, upsample = case.parent.name.split("_")
    seg = Segmenter(GOLDEN / f"golden_{precision}.tflite", threads=1, upsample=upsample)
    rgb = cv2.cvtColor(cv2.imread(str(GOLDEN / "frames" / case.name)), cv2.COLOR_BGR2RGB)
    expected = cv2.imread(str(GOLDEN / "masks" / case), cv2.IMREAD_UNCHANGED)
    got = seg.predict(rgb)
    assert got.shape == expected.shape == rgb.shape[:2]
    assert np.array_equal(got, expected), f"{np.mean(got != expected):.2%} of the pixels changed"


def test_the_golden_set_is_all_there():
    assert len(CASES) == 2 * 3 * 6 and len(set(np.unique(
        __import__("cv2").imread(str(GOLDEN / "masks" / CASES[0]), -1)))) >= 2  # a mask with several classes
