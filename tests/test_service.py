"""`edgeseg run` as a systemd service runs it: SIGTERM (systemctl stop) finishes the video and
the stats and exits 0; SIGHUP (systemctl reload) reopens the model file without reopening the
source or the server; the saved video plays at the source's rate. Real processes, real signals."""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgeseg.runtime.run.recording import VideoSink


def start_run(*args):
    """``edgeseg run ...`` in a subprocess whose stderr lines are collected as they come."""
    proc = subprocess.Popen([sys.executable, "-m", "edgeseg.cli.main", "run", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    return proc, lines


def wait_for(condition, timeout=60.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(port, path):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", path)
        response = conn.getresponse()
        return json.loads(response.read()) if response.status == 200 else None
    except OSError:
        return None


def video_facts(path: Path) -> tuple[int, float]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    fps = cap.get(cv2.CAP_PROP_FPS)
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    return count, fps


def segments_facts(folder: Path, stem: str) -> tuple[int, set]:
    """The frames in all the --save segments ``STEM-NNNNNN.mp4`` in ``folder``, and their rates."""
    total, rates = 0, set()
    for path in sorted(folder.glob(f"{stem}-*.mp4")):
        frames, fps = video_facts(path)
        total += frames
        rates.add(round(fps, 2))
    return total, rates


def test_sigterm_finishes_the_video_and_the_stats_and_exits_0(exported, video, tmp_path):
    out, stats = tmp_path / "out.mp4", tmp_path / "stats.json"
    proc, lines = start_run(exported["files"]["int8"]["path"], "--source", video, "--loop", "--save", out,
                            "--stats-json", stats, "--threads", "1")
    try:
        wait_for(lambda: any("FPS" in line for line in lines), what="the first status line")
        proc.send_signal(signal.SIGTERM)
        t0 = time.time()
        rc = proc.wait(timeout=20)
        took = time.time() - t0
    finally:
        proc.kill()
    assert rc == 0, "".join(lines)[-2000:]
    assert took < 5.0, took
    summary = json.loads(stats.read_text())
    assert summary["stopped_by"] == "SIGTERM" and summary["interrupted"] and summary["frames"] > 8
    frames, rates = segments_facts(tmp_path, "out")
    assert frames == summary["frames"] == summary["video"]["frames"]
    assert rates == {10.0}  # the clip's own rate, not a fixed 15
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"out-{n:06d}.mp4" for n in range(1, len(names))] + ["stats.json"]  # no hidden temporary left
    assert oct((tmp_path / "out-000001.mp4").stat().st_mode & 0o777) != oct(0o600)


def test_sighup_reloads_a_model_copied_over_the_old_one(exported, synth_root, tmp_path):
    """int8 running; a broken file copied over it: one warning, the int8 model goes on; then an
    fp32 model copied over it: /stats shows fp32 without a restart, and no frame is lost."""
    model = tmp_path / "deployed.tflite"
    shutil.copy(exported["files"]["int8"]["path"], model)
    port = free_port()
    out, stats = tmp_path / "out.mp4", tmp_path / "stats.json"
    proc, lines = start_run(model, "--source", synth_root / "val" / "images", "--loop", "--serve", f"127.0.0.1:{port}",
                            "--save", out, "--stats-json", stats, "--threads", "1")

    def deploy(source: Path):  # as a deployment does it: a new file renamed over the old path
        tmp = tmp_path / ".incoming.tflite"
        tmp.write_bytes(source.read_bytes())
        os.replace(tmp, model)
        proc.send_signal(signal.SIGHUP)

    def live():
        return get_json(port, "/stats") or {}

    try:
        wait_for(lambda: live().get("precision") == "int8", what="/stats of the int8 model")
        broken = tmp_path / "broken.tflite"
        broken.write_bytes(Path(exported["files"]["fp32"]["path"]).read_bytes()[:5000])
        deploy(broken)
        wait_for(lambda: any("reloading" in line and "keeping the running model" in line for line in lines),
                 what="the reload warning")
        before = live()["frames"]
        wait_for(lambda: live()["frames"] > before + 3, what="frames after the failed reload")
        assert live()["precision"] == "int8"
        deploy(Path(exported["files"]["fp32"]["path"]))
        wait_for(lambda: live().get("precision") == "fp32", what="/stats of the reloaded fp32 model\n" + "".join(lines))
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=20)
    finally:
        proc.kill()
    assert rc == 0, "".join(lines)[-2000:]
    assert any(line.startswith("reloaded ") and "fp32" in line for line in lines), lines
    summary = json.loads(stats.read_text())
    assert summary["precision"] == "fp32" and summary["reloads"] == 1
    assert summary["warnings"] == {"reload_failed": 1}
    frames, _ = segments_facts(tmp_path, "out")
    assert frames == summary["frames"]  # every frame segmented reached the video: none lost in the swap
    assert not any("Traceback" in line for line in lines)


def test_a_video_of_a_live_source_plays_at_the_measured_rate(tmp_path):
    sink = VideoSink(tmp_path / "cam.mp4")  # no rate given: measured from the capture times
    frame = np.zeros((32, 32, 3), np.uint8)
    for i in range(14):
        frame[:] = i * 10
        sink.write(frame, 100.0 + 0.2 * i)  # 5 frames a second
    sink.close()
    frames, fps = video_facts(tmp_path / "cam-000001.mp4")
    assert frames == 14 and fps == pytest.approx(5.0, abs=0.05)
    sink = VideoSink(tmp_path / "short.mp4", segment=None)  # fewer frames than are measured: the rate of those
    for t in (0.0, 1.5, 2.0, 2.5):  # a slow first frame (warm-up) does not count
        sink.write(frame, t)
    sink.close()
    assert video_facts(tmp_path / "short.mp4") == (4, pytest.approx(2.0, abs=0.05))  # one file, as named
