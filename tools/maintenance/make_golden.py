#!/usr/bin/env python
"""Write tests/golden/: a committed tiny model pair (fp32 and int8 .tflite), frames and the masks
the runtime gives today, so that any change of numerics (LiteRT, letterbox, upsampling, int8
input) shows in tests/test_golden.py. Rerun it only on purpose, and say why in the commit.

    .venv/bin/python tools/maintenance/make_golden.py [build/test-models]
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
GOLDEN = REPO / "tests" / "golden"
SIZES = {"wide": (48, 80), "large": (96, 128)}  # besides the model's own 64x64: letterbox + upsampling


def main(models: Path) -> None:
    import cv2

    from edgeseg.runtime.model.segmenter import Segmenter

    frames = GOLDEN / "frames"
    shutil.rmtree(GOLDEN, ignore_errors=True)
    frames.mkdir(parents=True)
    for precision in ("fp32", "int8"):
        shutil.copy(models / f"tiny_{precision}.tflite", GOLDEN / f"golden_{precision}.tflite")
    for path in sorted((models / "frames").glob("*.png"))[:2]:
        image = cv2.imread(str(path))
        cv2.imwrite(str(frames / path.name), image)
        for name, (h, w) in SIZES.items():
            cv2.imwrite(str(frames / f"{path.stem}_{name}.png"), cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA))
    for precision in ("fp32", "int8"):
        for upsample in ("auto", "exact", "fast"):
            seg = Segmenter(GOLDEN / f"golden_{precision}.tflite", threads=1, upsample=upsample)
            out = GOLDEN / "masks" / f"{precision}_{upsample}"
            out.mkdir(parents=True)
            for path in sorted(frames.glob("*.png")):
                rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
                cv2.imwrite(str(out / path.name), seg.predict(rgb))
    print(f"golden files in {GOLDEN}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "build" / "test-models"))
