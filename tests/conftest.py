import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The main suite is the machine without a GPU: the Vulkan loader finds no driver, wherever it runs
# (tests/boards/prove_gpu.py runs the GPU path on a software Vulkan)
os.environ["VK_DRIVER_FILES"] = os.environ["VK_ICD_FILENAMES"] = "/nonexistent/edgeseg-test-icd.json"

REPO = Path(__file__).resolve().parents[1]
CAMVID = REPO.parent / "shared" / "data" / "camvid"
RUNTIME_MODELS = Path(os.environ.get("EDGESEG_TEST_MODELS", REPO / "build" / "test-models"))


def pytest_collection_modifyitems(config, items):
    """tests/runtime_only proves the device install (no TensorFlow) works: a bare `pytest`
    collects it and says why it is skipped; `make test` runs it in .venv-runtime on models built
    by tools/maintenance/make_test_models.py."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is not None:
        reason = "device-install tests: TensorFlow is installed here; `make test` runs them in .venv-runtime"
    elif not (RUNTIME_MODELS / "tiny_int8.tflite").is_file():
        reason = f"runtime test models not built in {RUNTIME_MODELS}: run tools/maintenance/make_test_models.py (make test does)"
    else:
        return
    for item in items:
        if "runtime_only" in item.nodeid:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def models():
    """The runtime test models (tests/runtime_only: skipped above when they are missing)."""
    return RUNTIME_MODELS


def device_cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """`edgeseg ARGS` of the venv running the tests (the device install, in tests/runtime_only)."""
    exe = Path(sys.executable).with_name("edgeseg")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def edgeseg_log():
    """Messages of the "edgeseg" logger during the test (the CLI stops it propagating to the root
    logger, where caplog listens)."""
    import logging

    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    log = logging.getLogger("edgeseg")
    handler, level = Collect(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield messages
    log.removeHandler(handler)
    log.setLevel(level)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """A tiny generated dataset: 16 train / 4 val frames of 64x64."""
    from edgeseg.data import synthetic

    return synthetic.generate(tmp_path_factory.mktemp("synth") / "data",
                              {"train": 16, "val": 4}, size=(64, 64))


@pytest.fixture
def camvid_root():
    if not CAMVID.is_dir():
        pytest.skip(f"real CamVid data not found at {CAMVID}")
    return CAMVID


def write_palette_png(path: Path, indices: np.ndarray, palette: np.ndarray) -> None:
    """A real 8-bit palette PNG (colour type 3), as Pascal VOC ships, without Pillow."""
    h, w = indices.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + row.astype(np.uint8).tobytes() for row in indices)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
           + chunk(b"PLTE", palette.astype(np.uint8).tobytes()) + chunk(b"IDAT", zlib.compress(raw))
           + chunk(b"IEND", b""))
    path.write_bytes(png)


def make_voc(root: Path, sizes: dict) -> Path:
    """A Pascal VOC folder (JPEGImages, palette PNGs, split lists) with frames of the given
    (height, width) per split; each frame a class-0 background with a class-15 (person) block
    and the ignored border around it."""
    import cv2

    from edgeseg.data import voc

    (root / "ImageSets/Segmentation").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "SegmentationClass").mkdir()
    rng = np.random.default_rng(0)
    for split, shapes in sizes.items():
        stems = []
        for i, (h, w) in enumerate(shapes):
            stem = f"2007_{split}{i:03d}"
            index = np.zeros((h, w), np.uint8)
            index[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 255
            index[h // 4 + 1: 3 * h // 4 - 1, w // 4 + 1: 3 * w // 4 - 1] = 15
            image = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
            image[index == 15] += 150
            cv2.imwrite(str(root / "JPEGImages" / f"{stem}.jpg"), image)
            write_palette_png(root / "SegmentationClass" / f"{stem}.png", index, voc.voc_colormap())
            stems.append(stem)
        (root / "ImageSets/Segmentation" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    return root


def make_folder_dataset(root: Path, classes=("background", "road", "car", "person"), counts=None,
                        size=(48, 64), mask_dir: str = "masks", classes_txt: bool = True, stem: str = "f") -> Path:
    """A small dataset of one's own: ``classes.txt`` (names only), SPLIT/images/*.jpg and
    SPLIT/MASK_DIR/*.png id masks holding every class (0 background, 1 road below the middle, a
    car and a person block), the images coloured by class so a model can learn them."""
    import cv2

    counts = counts or {"train": 6, "val": 2}
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if classes_txt:
        (root / "classes.txt").write_text("".join(f"{name}\n" for name in classes))
    rng = np.random.default_rng(0)
    h, w = size
    for split, n in counts.items():
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / mask_dir).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            mask = np.zeros((h, w), np.uint8)
            mask[h // 2:] = 1
            y, x = int(rng.integers(2, h // 2 - 10)), int(rng.integers(0, w - 20))
            mask[y:y + 8, x:x + 16] = 2
            mask[h // 2 + 4:h // 2 + 14, (x + 30) % (w - 8):(x + 30) % (w - 8) + 6] = 3 % len(classes)
            tint = np.array([[40, 40, 40], [120, 120, 120], [30, 30, 220], [220, 60, 30]], np.uint8)
            image = tint[mask % 4] + rng.integers(0, 20, (h, w, 3)).astype(np.uint8)
            cv2.imwrite(str(root / split / "images" / f"{stem}{i:03d}.jpg"), image)
            cv2.imwrite(str(root / split / mask_dir / f"{stem}{i:03d}.png"), mask)
    return root


def run_edgeseg(*args, cwd=None, timeout=600, env=None):
    """Run the CLI in a subprocess (a fresh process, as a user would)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "edgeseg.cli.main", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=full_env)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("edgeseg: error:")]


@pytest.fixture(scope="session")
def run_dir(synth_root, tmp_path_factory):
    from edgeseg.config import TrainConfig
    from edgeseg.train import train

    run = tmp_path_factory.mktemp("export") / "tiny"
    cfg = TrainConfig().override(
        data__root=str(synth_root), data__crop_size=[64, 64], data__batch_size=4, model__alpha=0.35,
        model__aspp_filters=32, model__decoder_filters=32, optim__epochs=2, optim__steps_per_epoch=15,
        optim__learning_rate=5e-3)
    train(cfg, run, verbose=0)
    return run


@pytest.fixture(scope="session")
def exported(run_dir, tmp_path_factory):
    from edgeseg.export.exporter import ExportOptions, export_run

    manifests = tmp_path_factory.mktemp("manifests")
    return export_run(run_dir, ExportOptions(formats=("fp32", "fp16", "int8"), calib_size=12,
                                             manifest_dir=manifests))


@pytest.fixture(scope="session")
def onnx_export(run_dir, tmp_path_factory):
    """`edgeseg export RUN --int8 --format both` of the tiny run: fp32/int8 .tflite and .onnx."""
    out = tmp_path_factory.mktemp("onnx") / "models"
    result = run_edgeseg("export", run_dir, "--int8", "--format", "both", "--out", out, "--calib-size", "8")
    assert result.returncode == 0, result.stderr[-2000:]
    return out


@pytest.fixture(scope="session")
def video(synth_root, tmp_path_factory):
    """An 8-frame mp4 of the synthetic val frames (twice over)."""
    import cv2

    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    frames = sorted((synth_root / "val" / "images").glob("*.jpg"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 64))
    for f in frames * 2:
        writer.write(cv2.imread(str(f)))
    writer.release()
    return path
