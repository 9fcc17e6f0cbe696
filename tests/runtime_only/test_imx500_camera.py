"""`edgeseg run network.rpk --camera csi` on the device install (no TensorFlow), against a
stand-in for Picamera2 and its IMX500 class that serves recorded output tensors: the float
model's logits on each frame's ROI, so the sensor's masks must agree with `--compare` exactly
where the ROI mapping and the tensor layout are right. What the stand-in assumes is what
docs/imx500.md says only a camera can prove: the outputs are (h, w, classes) logits (or
(classes, h, w)), ``get_roi_scaled`` is the frame region the network saw."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MODELS = Path(os.environ.get("EDGESEG_TEST_MODELS", "build/test-models"))
FRAME_HW, ROI = (120, 160), (20, 0, 120, 120)  # x, y, w, h: a square ROI in a 4:3 frame

FAKE_PICAMERA2 = '''
import os
import numpy as np

REC = np.load(os.environ["FAKE_IMX500_RECORDING"])
LOADING = 3  # requests before the network firmware is on the sensor: no output tensors yet


class Request:
    def __init__(self, i):
        self.k = (i - LOADING) % len(REC["frames"]) if i >= LOADING else None
        self.released = False

    def get_metadata(self):
        return {"k": self.k}

    def make_array(self, stream):
        assert stream == "main" and self.k is not None
        return REC["frames"][self.k].copy()

    def release(self):
        self.released = True


class Picamera2:
    opened = []

    def __init__(self, index=0):
        self.index, self.requests = index, 0
        Picamera2.opened.append(self)

    def create_video_configuration(self, main, controls=None, buffer_count=4):
        return {"main": main, "controls": controls or {}}

    def configure(self, config):
        self.config = config

    def start(self):
        pass

    def capture_request(self):
        self.requests += 1
        return Request(self.requests - 1)

    def stop(self):
        pass

    def close(self):
        pass
'''

FAKE_DEVICES = '''
import os
import numpy as np
from picamera2 import REC


class Rect:
    def __init__(self, x, y, w, h):
        self.x, self.y, self.width, self.height = x, y, w, h


class IMX500:
    def __init__(self, network_file):
        assert os.path.isfile(network_file), network_file
        self.camera_num = 0
        self.aspect = None

    def get_input_size(self):
        return tuple(int(v) for v in REC["input_wh"])

    def set_inference_aspect_ratio(self, aspect):
        self.aspect = aspect

    def get_outputs(self, metadata, add_batch=False):
        if metadata["k"] is None:
            return None
        out = REC["outputs"][metadata["k"]].astype(np.float32)
        return [out.transpose(2, 0, 1) if os.environ.get("FAKE_IMX500_LAYOUT") == "chw" else out]

    def get_roi_scaled(self, request):
        return Rect(*(int(v) for v in REC["roi"]))

    @staticmethod
    def get_kpi_info(metadata):
        return (4.5, 0.25)
'''


def stand_in_camera(root: Path, models: Path = MODELS) -> dict:
    """The stand-in package, a recording (frames, ROI, the float model's logits on each ROI) and
    network.rpk with the edgeseg.json an IMX500 export writes beside it, under ``root`` (also
    used by tests/boards/prove_arm64.py in the arm64 Pi roots)."""
    import cv2

    from edgeseg.runtime.model.segmenter import Segmenter

    (root / "picamera2" / "devices").mkdir(parents=True)
    (root / "picamera2" / "__init__.py").write_text(FAKE_PICAMERA2)
    (root / "picamera2" / "devices" / "__init__.py").write_text(FAKE_DEVICES)
    seg = Segmenter(models / "tiny_fp32.tflite", threads=1)
    frames, outputs = [], []
    x, y, w, h = ROI
    for path in sorted((models / "frames").glob("*.png"))[:4]:
        rgb = cv2.resize(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), FRAME_HW[::-1])
        logits, _ = seg.raw_output(np.ascontiguousarray(rgb[y:y + h, x:x + w]))
        frames.append(rgb[..., ::-1])  # Picamera2's RGB888 is B, G, R in memory
        outputs.append(logits)
    np.savez(root / "recording.npz", frames=np.stack(frames), outputs=np.stack(outputs), roi=np.array(ROI),
             input_wh=np.array(seg.input_size[::-1]))
    net = root / "net"
    net.mkdir()
    (net / "network.rpk").write_bytes(b"not a real network")
    meta = json.loads(seg.meta.to_json())
    (net / "edgeseg.json").write_text(json.dumps({**meta, "precision": "imx500"}))
    return {"root": root, "rpk": net / "network.rpk", "recording": root / "recording.npz", "seg": seg,
            "frames": frames}


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    return stand_in_camera(tmp_path_factory.mktemp("imx500"))


def run_camera(camera, *args, layout="hwc", fake=True):
    env = {**os.environ, "FAKE_IMX500_RECORDING": str(camera["recording"]), "FAKE_IMX500_LAYOUT": layout}
    if fake:
        env["PYTHONPATH"] = os.pathsep.join([str(camera["root"]), env.get("PYTHONPATH", "")])
    exe = Path(sys.executable).with_name("edgeseg")
    return subprocess.run([str(exe), "run", *map(str, args)], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("layout", ["hwc", "chw"])
def test_the_sensor_masks_agree_with_the_float_model_on_the_roi(camera, layout, tmp_path):
    stats, masks = tmp_path / "stats.json", tmp_path / "masks"
    result = run_camera(camera, camera["rpk"], "--camera", "csi", "--compare", MODELS / "tiny_fp32.tflite",
                        "--compare-every", "1", "--max-frames", "6", "--stats-json", stats, "--save-masks", masks,
                        layout=layout)
    assert result.returncode == 0, result.stderr
    summary = json.loads(stats.read_text())
    assert summary["frames"] == 6 and summary["precision"] == "imx500" and "IMX500" in summary["backend"]
    assert summary["compare"]["frames"] == 6 and summary["compare"]["agreement_miou"] == pytest.approx(1.0)
    assert summary["stages"]["inference"]["p50_ms"] == pytest.approx(4.5)  # the sensor's own DNN time
    import cv2

    x, y, w, h = ROI
    saved = sorted(masks.glob("*.png"))
    assert len(saved) == 6
    for path in saved:
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert mask.shape == FRAME_HW
        outside = np.ones(FRAME_HW, bool)
        outside[y:y + h, x:x + w] = False
        assert (mask[outside] == 255).all() and (mask[~outside] < 255).all()
        inside = mask[y:y + h, x:x + w]
        # the frame it came from: the float model's labels of that ROI are the same
        expected = [camera["seg"].predict(np.ascontiguousarray(f[..., ::-1][y:y + h, x:x + w])) for f in camera["frames"]]
        assert any((inside == e).all() for e in expected)


def test_one_line_errors(camera, tmp_path):
    result = run_camera(camera, camera["rpk"], "--source", MODELS / "clip.mp4")
    assert result.returncode != 0 and "give --camera csi" in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("edgeseg: error:")]) == 1
    lonely = tmp_path / "network.rpk"
    lonely.write_bytes(b"x")
    result = run_camera(camera, lonely, "--camera", "csi")
    assert result.returncode != 0 and "no edgeseg.json beside" in result.stderr
    result = run_camera(camera, camera["rpk"], "--camera", "csi", fake=False)  # no Picamera2 on this machine
    assert result.returncode != 0 and "needs Picamera2 on a Raspberry Pi" in result.stderr
    result = run_camera(camera, camera["rpk"], "--camera", "csi", "--delegate", "gpu")
    assert result.returncode == 2 and "do not apply" in result.stderr


def test_sensor_logits_takes_hwc_and_chw_and_refuses_other_shapes():
    from edgeseg.runtime.model.backend import BackendError
    from edgeseg.runtime.model.imx500 import sensor_logits

    hwc = np.arange(4 * 6 * 3, dtype=np.float32).reshape(4, 6, 3)
    assert (sensor_logits(hwc, (4, 6), 3) == hwc).all()
    assert (sensor_logits(hwc.transpose(2, 0, 1), (4, 6), 3) == hwc).all()
    assert (sensor_logits(hwc[None], (4, 6), 3) == hwc).all()
    assert (sensor_logits(hwc.ravel(), (4, 6), 3) == hwc).all()
    with pytest.raises(BackendError, match="edgeseg.json"):
        sensor_logits(hwc, (4, 6), 5)
