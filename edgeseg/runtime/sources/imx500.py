"""The Raspberry Pi AI Camera (Sony IMX500) through Picamera2: the network (``network.rpk``) runs
on the sensor; each frame comes with its output tensors and the region of the frame the network
saw (``Frame.sensor``). Picamera2's ``IMX500`` is made before ``Picamera2`` (it uploads the
network firmware), as Picamera2's own examples do.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgeseg.runtime.sources.cameras import CameraError, CameraPlan, CameraSettings, picamera2_problem

log = logging.getLogger("edgeseg")

DEFAULT_SIZE = (1280, 960)  # 4:3, the sensor's own shape: the ROI is never cut by the frame's crop
PI_INSTALL = "sudo apt install imx500-all python3-picamera2 (and make the venv with --system-site-packages)"


class Imx500Capture:
    """``read() -> (ok, bgr)`` like every camera; ``last_sensor`` is the frame's
    ``{"outputs": [...], "roi": (x, y, w, h), "dnn_ms": ...}``. Frames that come before the
    network has loaded (no output tensors yet) are skipped.

    Args:
        rpk: the network file (``imx500-package`` output).
        index: the camera (Picamera2's numbering; the IMX500 tells its own).
        size: the frame's (width, height).
        input_wh: the network's input (width, height), from edgeseg.json: checked against the
            network the sensor reports, and its aspect ratio given to the sensor's ROI so the
            network sees an undistorted crop.
    """

    def __init__(self, rpk: Path, index: int | None, size, fps: float | None, input_wh):
        from picamera2 import Picamera2
        from picamera2.devices import IMX500

        self.imx500 = IMX500(str(rpk))
        reported = tuple(int(v) for v in self.imx500.get_input_size())
        if reported != tuple(input_wh):
            raise CameraError(f"{Path(rpk).name} takes {reported[0]}x{reported[1]} input, but edgeseg.json says "
                              f"{input_wh[0]}x{input_wh[1]}: they are not the same export")
        self.imx500.set_inference_aspect_ratio(tuple(input_wh))
        self.camera = Picamera2(self.imx500.camera_num if index is None else index)
        controls = {"FrameRate": fps} if fps else {}
        config = self.camera.create_video_configuration(main={"size": tuple(size), "format": "RGB888"},
                                                        controls=controls, buffer_count=6)
        self.camera.configure(config)
        self.camera.start()
        self.last_sensor = None
        self._waited = 0

    def read(self):
        try:
            while True:
                request = self.camera.capture_request()
                try:
                    metadata = request.get_metadata()
                    outputs = self.imx500.get_outputs(metadata)
                    if outputs is None:  # the network firmware is still loading
                        self._say_waiting()
                        continue
                    roi = self.imx500.get_roi_scaled(request)
                    bgr = request.make_array("main")
                    kpi = self.imx500.get_kpi_info(metadata)
                finally:
                    request.release()
                self.last_sensor = {"outputs": outputs, "roi": (roi.x, roi.y, roi.width, roi.height),
                                    "dnn_ms": kpi[0] if kpi else None}
                return True, bgr
        except Exception as e:  # noqa: BLE001 - any camera error is a lost signal
            log.warning("IMX500: %s", e)
            return False, None

    def _say_waiting(self):
        if self._waited % 300 == 0:
            log.info("IMX500: waiting for the network to load onto the sensor (minutes the first time)")
        self._waited += 1

    def release(self):
        try:
            self.camera.stop()
        finally:
            self.camera.close()


def imx500_plan(rpk: Path, index: int | None, settings: CameraSettings, input_hw) -> CameraPlan:
    """The AI Camera running ``rpk``; a CameraError in one line when Picamera2 is missing."""
    problem = picamera2_problem()
    if problem is not None:
        raise CameraError(f"an IMX500 network needs Picamera2 on a Raspberry Pi ({problem}): {PI_INSTALL}")
    if settings.mjpg:
        raise CameraError("--camera-mjpg applies to USB cameras, not the AI Camera")
    size = settings.size or DEFAULT_SIZE
    input_wh = (int(input_hw[1]), int(input_hw[0]))
    return CameraPlan(f"AI Camera (IMX500) {'' if index is None else index} running {Path(rpk).name} "
                      f"({size[0]}x{size[1]})",
                      lambda _spec: Imx500Capture(rpk, index, size, settings.fps, input_wh), f"imx500:{rpk}")


def open_imx500_source(rpk: Path, camera: str | None, source: str | None, settings: CameraSettings, input_hw,
                       give_up_after: float | None = None, stopping=None):
    """``(frames, reader)`` of the AI Camera for ``--camera csi[:N]`` or ``--source csi://N``."""
    from edgeseg.runtime.sources.cameras import parse_camera
    from edgeseg.runtime.sources.frame import SourceError
    from edgeseg.runtime.sources.live import LatestFrameReader, live_frames

    text = camera if camera is not None else (f"csi:{source[len('csi://'):] or 0}" if source.startswith("csi://")
                                               else None)
    try:
        kind, index = parse_camera(text) if text is not None else (None, None)
        if kind is None or not isinstance(index, int):
            raise CameraError(f"{Path(rpk).name} runs on the AI Camera: give --camera csi (or csi:N)")
        # `csi` and `0`: the camera the IMX500 says it is; csi:N / N: Picamera2's camera N
        plan = imx500_plan(rpk, None if text in ("csi", "0") else index, settings, input_hw)
        reader = LatestFrameReader(plan.spec, open_capture=plan.open, name=plan.describe)
    except CameraError as e:
        raise SourceError(str(e)) from None
    log.info("reading %s", plan.describe)
    return live_frames(reader, give_up_after, stopping=stopping), reader
