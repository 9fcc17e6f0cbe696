"""Faults a board in the field meets: a power cut (kill -9) during a recording or an export, a
full disk, a camera or stream that is not up yet, slow clients of the preview server, unreadable
frames, a folder given as a model. Real processes, real signals, real full filesystems (a small
tmpfs: the tests run as root; elsewhere they say why they are skipped)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import error_lines, run_edgeseg
from edgeseg.runtime.sources.live import LatestFrameReader, live_frames


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgeseg.cli.main", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout=60.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def frames_in(path: Path) -> tuple[int, int]:
    """(frames decoded, frames the container says it holds)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open"
    said = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    decoded = 0
    while cap.read()[0]:
        decoded += 1
    cap.release()
    return decoded, said


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and ".tmp" in p.name)


# --- a power cut during a recording ----------------------------------------------------------

def test_kill_9_keeps_every_closed_segment_and_stats_at_most_one_period_old(exported, video, tmp_path):
    """`kill -9` (what a power cut does to the process) 3.5 segments into a recording: every
    segment closed before it opens and holds all its frames, the one in progress is a temporary
    (never a broken file under a final name), the stats on disk are at most one period old; the
    next run removes the temporary, says so, and goes on with the next segment number."""
    segment, every = 1.0, 1.0
    out, stats = tmp_path / "out.mp4", tmp_path / "stats.json"
    proc = start("run", exported["files"]["int8"]["path"], "--source", video, "--loop", "--save", out,
                 "--save-segment", segment, "--stats-json", stats, "--stats-every", every, "--threads", "1")
    try:
        wait_for(lambda: (tmp_path / "out-000003.mp4").exists(), what="three closed segments")
        time.sleep(0.5 * segment)
        proc.send_signal(signal.SIGKILL)
        killed = time.time()
        proc.wait(timeout=10)
    finally:
        proc.kill()
    kept = sorted(tmp_path.glob("out-*.mp4"))
    assert [p.name for p in kept] == [f"out-{n:06d}.mp4" for n in range(1, len(kept) + 1)]
    for path in kept:
        decoded, said = frames_in(path)
        assert decoded == said > 0, path
    # what the cut cost: the frames after the last closed segment, at most one segment (and one
    # 0.25 s checkpoint tick) of the run
    lost = killed - kept[-1].stat().st_mtime
    assert lost <= segment + 0.25 + 0.5, lost
    left = temporaries(tmp_path)
    assert all(name.startswith(f".out-{len(kept) + 1:06d}.") for name in left), left
    snapshot = json.loads(stats.read_text())
    assert snapshot["in_progress"] is True and snapshot["frames"] > 0
    assert killed - snapshot["written_at"] <= every + 0.25 + 0.5, killed - snapshot["written_at"]

    again = run_edgeseg("run", exported["files"]["int8"]["path"], "--source", video, "--save", out,
                        "--stats-json", stats)
    assert again.returncode == 0, again.stderr[-2000:]
    for name in left:
        assert f"removed {tmp_path / name}" in again.stderr and "left by an interrupted run" in again.stderr
    assert temporaries(tmp_path) == []
    summary = json.loads(stats.read_text())
    assert summary["in_progress"] is False and summary["frames"] == 8
    assert summary["video"]["first"] == str(tmp_path / f"out-{len(kept) + 1:06d}.mp4")  # numbering goes on
    assert frames_in(tmp_path / f"out-{len(kept) + 1:06d}.mp4") == (8, 8)
    assert kept[0].stat().st_size > 0 and frames_in(kept[0])[0] > 0  # the older segments are untouched


# --- temporaries of a killed writer ---------------------------------------------------------

WRITER = """
import sys, time
from pathlib import Path
from edgeseg.core.files import atomic_path
with atomic_path(Path(sys.argv[1])) as tmp:
    tmp.write_bytes(b"x" * 100000)
    print(tmp, flush=True)
    time.sleep(120)
"""


def test_a_killed_exports_temporary_is_removed_at_the_next_export_and_a_live_ones_is_not(run_dir, tmp_path):
    from edgeseg.export.exporter import ExportOptions, plan_export

    out = tmp_path / "models"
    out.mkdir()
    (out / ".notes.abcdefgh.tmp.txt").write_text("not edgeseg's: another name")
    dead = subprocess.Popen([sys.executable, "-c", WRITER, out / "tiny_fp32.tflite"], stdout=subprocess.PIPE, text=True)
    live = subprocess.Popen([sys.executable, "-c", WRITER, out / "tiny_int8.tflite"], stdout=subprocess.PIPE, text=True)
    try:
        dead_tmp, live_tmp = Path(dead.stdout.readline().strip()), Path(live.stdout.readline().strip())
        dead.send_signal(signal.SIGKILL)
        dead.wait(timeout=10)
        assert dead_tmp.is_file() and live_tmp.is_file()
        plan_export(run_dir, ExportOptions(formats=("fp32", "int8"), out_dir=out))
        assert not dead_tmp.exists(), "the killed writer's temporary is still there"
        assert live_tmp.is_file(), "a live writer's temporary was removed"
        assert (out / ".notes.abcdefgh.tmp.txt").is_file()
    finally:
        live.kill()
        dead.kill()


# --- full disks --------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs: a disk that fills (mounting needs root, which `make test` has)."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is made with a small tmpfs, which needs root (make test runs as root)")
    disk = tmp_path / "card"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (a container without CAP_SYS_ADMIN?): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk: Path, leave: int) -> Path:
    """A file that takes all of ``disk`` but ``leave`` bytes."""
    st = os.statvfs(disk)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


def test_export_into_a_full_disk_is_one_line_and_a_rerun_completes_it(run_dir, exported, small_disk):
    from edgeseg.export.exporter import ExportOptions, export_run

    out = small_disk / "models"
    filler = fill(small_disk, Path(exported["files"]["fp32"]["path"]).stat().st_size + 64 * 1024)
    result = run_edgeseg("export", run_dir, "--int8", "--out", out, "--calib-size", "8")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    [line] = error_lines(result.stderr)
    assert line.startswith(f"edgeseg: error: cannot write {out / 'tiny_int8.tflite'}: No space left on device (")
    assert f"free in {out})" in line
    assert sorted(p.name for p in out.iterdir()) == sorted(["export.json", "tiny_fp32.tflite", "synthetic_train_balanced_8.txt"])
    record = json.loads((out / "export.json").read_text())
    assert record["complete"] is False and list(record["files"]) == ["fp32"] and record["files"]["fp32"]["sha256"]
    fp32 = (out / "tiny_fp32.tflite").stat()

    filler.unlink()  # room again: the same export, without --force, makes only what is missing
    report = export_run(run_dir, ExportOptions(formats=("fp32", "int8"), out_dir=out, calib_size=8))
    assert report["complete"] and report["ok"] and set(report["files"]) == {"fp32", "int8"}
    after = (out / "tiny_fp32.tflite").stat()
    assert (after.st_ino, after.st_mtime_ns) == (fp32.st_ino, fp32.st_mtime_ns)  # kept, not written again
    assert json.loads((out / "export.json").read_text())["complete"] is True
    from edgeseg.core.errors import ExportError

    with pytest.raises(ExportError, match="tiny_int8.tflite exists; pass --force"):  # other settings: not its file
        export_run(run_dir, ExportOptions(formats=("fp32", "int8"), out_dir=out, calib_size=4))


def test_run_outputs_on_a_full_disk_stop_in_one_line_and_the_others_go_on(exported, video, small_disk, tmp_path):
    model = exported["files"]["int8"]["path"]
    fill(small_disk, 16 * 1024)  # four pages: the masks fill them, the video cannot be finished
    elsewhere = tmp_path / "ok"
    elsewhere.mkdir()
    # the video and the masks on the full card; the stats and the collection where there is room
    full = run_edgeseg("run", model, "--source", video, "--loop", "--max-frames", "200", "--threads", "1",
                       "--save", small_disk / "out.mp4", "--save-masks", small_disk / "masks",
                       "--stats-json", elsewhere / "s.json", "--collect", elsewhere / "site",
                       "--collect-when", "every:10", "--collect-gap", "0", "--collect-dedup", "0")
    assert full.returncode == 1, full.stderr[-3000:]
    assert "Traceback" not in full.stderr
    [line] = error_lines(full.stderr)
    assert line.startswith(f"edgeseg: error: cannot write {small_disk}") and " free in " in line, line
    summary = json.loads((elsewhere / "s.json").read_text())
    assert summary["frames"] == 200 and set(summary["not_written"]) == {"video_not_written", "masks_not_written"}
    assert all(" free in " in message for message in summary["not_written"].values())
    assert summary["collect"]["saved"] == 20  # the collection went on
    for path in small_disk.glob("out*.mp4"):  # nothing half-written under a final name
        decoded, said = frames_in(path)
        assert decoded == said > 0
    import cv2

    masks = list((small_disk / "masks").glob("*.png"))
    assert all(cv2.imread(str(m), cv2.IMREAD_UNCHANGED) is not None for m in masks)
    assert temporaries(small_disk) == [] and temporaries(small_disk / "masks") == []

    # the stats and the collection on the full card; the masks where there is room
    for mask in masks:
        mask.unlink()
    (small_disk / "filler").unlink()
    fill(small_disk, 24 * 1024)  # the collection's first frames fit, then the card is full
    again = run_edgeseg("run", model, "--source", video, "--loop", "--max-frames", "100", "--threads", "1",
                        "--stats-json", small_disk / "s.json", "--save-masks", elsewhere / "masks",
                        "--collect", small_disk / "site", "--collect-when", "every:10", "--collect-gap", "0",
                        "--collect-dedup", "0")
    assert again.returncode == 1, again.stderr[-3000:]
    [line] = error_lines(again.stderr)
    assert "cannot write" in line and " free in " in line and "Traceback" not in again.stderr
    assert len(list((elsewhere / "masks").glob("*.png"))) == 8  # the clip's frames, all of them
    assert not (small_disk / "s.json").exists() or json.loads((small_disk / "s.json").read_text())
    rows = (small_disk / "site" / "frames.csv").read_text().splitlines() if (small_disk / "site").is_dir() else []
    images = list((small_disk / "site" / "train" / "images").glob("*.jpg")) if rows else []
    assert len(rows) - 1 == len(images)  # every row whole, and each with its frame


def test_a_checkpoint_on_a_full_disk_is_one_line(synth_root, small_disk):
    """TensorFlow's BackupAndRestore checkpoint cannot be written: an EdgesegError of one line
    naming the file and the free space (the CLI prints it, exit 1), not ResourceExhaustedError."""
    from edgeseg.config import TrainConfig
    from edgeseg.core.errors import EdgesegError
    from edgeseg.train import train

    fill(small_disk, 300 * 1024)  # the config and dataset.json fit; the first checkpoint does not
    cfg = TrainConfig().override(
        data__root=str(synth_root), data__crop_size=[64, 64], data__batch_size=4, model__alpha=0.35,
        model__aspp_filters=8, model__decoder_filters=8, optim__epochs=1, optim__steps_per_epoch=2)
    with pytest.raises(Exception) as caught:
        train(cfg, small_disk / "run", verbose=0)
    card = re.escape(str(small_disk))
    assert isinstance(caught.value, EdgesegError) and caught.value.exit_code == 1, repr(caught.value)[:500]
    assert re.fullmatch(rf"cannot write {card}/run/\S+: No space left on device "
                        rf"\([\d.]+ (bytes|KB|MB) free in {card}/run\S*\)", str(caught.value)), str(caught.value)
    assert not (small_disk / "run" / "best.h5").exists() and not (small_disk / "run" / "last.h5").exists()


def test_refused_writes_name_the_file_and_the_free_space(tmp_path):
    import errno

    from edgeseg.core.files import OutputError, atomic_path
    from edgeseg.train.fit import refused_write

    error = refused_write(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "history.csv")), tmp_path)
    assert str(error).startswith(f"cannot write {tmp_path / 'history.csv'}: No space left on device (")
    assert refused_write(OSError(errno.ENOENT, "No such file"), tmp_path) is None
    with pytest.raises(OutputError, match="cannot write .*best.h5: Disk quota exceeded"):
        with atomic_path(tmp_path / "best.h5"):
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
    assert temporaries(tmp_path) == []


# --- a camera or stream that is not up yet -----------------------------------------------------

class LateCamera:
    """Cannot be opened until ``up`` seconds after it was made; then delivers frames."""

    def __init__(self, up: float, down: tuple[float, float] | None = None):
        self.t0, self.up, self.down = time.monotonic(), up, down
        self.attempts: list[float] = []

    def now(self):
        return time.monotonic() - self.t0

    def alive(self):
        t = self.now()
        return t >= self.up and not (self.down and self.down[0] <= t < self.down[1])

    def open(self, spec):
        self.attempts.append(self.now())
        if not self.alive():
            return None
        camera = self

        class Capture:
            def read(self):
                time.sleep(0.01)
                return (True, np.zeros((8, 8, 3), np.uint8)) if camera.alive() else (False, None)

            def release(self):
                pass

        return Capture()


def test_a_camera_that_comes_up_late_is_waited_for_with_the_same_back_off(edgeseg_log):
    camera = LateCamera(up=1.5)
    reader = LatestFrameReader(0, open_capture=camera.open, backoff=0.1, max_backoff=0.4, name="camera 0")
    got = []
    for frame in live_frames(reader, poll=0.1):
        got.append(camera.now())
        if len(got) == 3:
            break
    assert got and got[0] >= 1.5
    gaps = np.diff(camera.attempts)  # the back-off of a source lost mid-run: 0.1 s, doubling to 0.4 s
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4 and max(gaps[1:]) <= 0.4 + 0.15, gaps
    assert reader.reconnects == len(camera.attempts) - 1 and reader.reconnected == 1
    assert edgeseg_log[0] == "cannot open camera 0; retrying until it comes up (--give-up-after to stop)"
    assert "source camera 0 opened" in edgeseg_log


def test_every_reconnect_attempt_is_counted():
    camera = LateCamera(up=0.0, down=(0.3, 1.3))
    reader = LatestFrameReader(0, open_capture=camera.open, backoff=0.05, max_backoff=0.2)
    seen = 0
    for _ in live_frames(reader, poll=0.1):
        seen += 1
        if camera.now() > 1.6:
            break
    attempts_while_down = sum(0.3 <= t < 1.3 for t in camera.attempts)
    assert attempts_while_down >= 4
    assert reader.reconnects == len(camera.attempts) - 1 >= attempts_while_down and reader.reconnected == 1


def test_a_stream_not_up_yet_is_retried_and_one_that_can_never_work_fails_at_once(exported, tmp_path):
    model = exported["files"]["int8"]["path"]
    with socket.socket() as s:  # a port nobody listens on: connection refused, as a server still starting
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"rtsp://127.0.0.1:{port}/stream"
    result = run_edgeseg("run", model, "--source", url, "--give-up-after", "3", "--stats-json", tmp_path / "s.json")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"cannot open {url}; retrying until it comes up (--give-up-after to stop)", lines
    assert error_lines(result.stderr) == [f"edgeseg: error: no frame from {url} in 3 s (--give-up-after): it never opened"]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["reconnects"] >= 2 and summary["reconnected"] == 0  # 0.5, 1, 2 s apart
    assert f"reconnects {summary['reconnects']} (0 succeeded)" in result.stdout
    for source, words in (("rtsp://", "malformed stream URL: rtsp:// (no host)"),
                          ("rtsp://cam:port/x", "the port is not a number"),
                          ("rstp://cam/x", "not a stream URL: rstp://cam/x"),
                          (str(tmp_path / "nope.mp4"), "source not found")):
        t0 = time.time()
        result = run_edgeseg("run", model, "--source", source)
        assert result.returncode == 1 and time.time() - t0 < 30
        [line] = error_lines(result.stderr)
        assert words in line, line


# --- slow clients of the preview server --------------------------------------------------------

def test_slow_clients_are_cut_at_the_header_deadline_and_the_connection_cap_answers():
    """Loopback only, bounded: 6 connections that send one header line every 0.3 s for 4 s, then
    more than the cap. Segmentation (publish) and /stats go on as before; the cap is answered
    503 at once; each slow connection is closed at its 1.5 s header deadline, not kept as long as
    it trickles."""
    import http.client

    from edgeseg.runtime.run.stats import RunStats
    from edgeseg.runtime.serve.server import MJPEGServer

    server = MJPEGServer("127.0.0.1", 0, max_clients=2, max_connections=8, header_timeout=1.5)
    port = server.address[1]
    stop, publish_ms = threading.Event(), []

    def segmentation():
        stats = RunStats()
        frame = np.zeros((64, 64, 3), np.uint8)
        while not stop.is_set():
            t0 = time.perf_counter()
            stats.frame_done()
            server.publish(frame, stats)
            publish_ms.append(1000 * (time.perf_counter() - t0))
            time.sleep(0.01)

    def get_stats():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        t0 = time.perf_counter()
        conn.request("GET", "/stats")
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response.status, time.perf_counter() - t0, body

    def trickle(sockets, started, closed_after, until):
        """One header line every 0.3 s on each slow connection; when the server closes one, when."""
        while time.monotonic() - started < until:
            for s in sockets:
                if s in closed_after:
                    continue
                try:
                    if s.recv(200) == b"":
                        closed_after[s] = time.monotonic() - started
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    closed_after[s] = time.monotonic() - started
                    continue
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    closed_after[s] = time.monotonic() - started
            time.sleep(0.3)

    worker = threading.Thread(target=segmentation, daemon=True)
    worker.start()
    slow, closed_after = [], {}
    try:
        time.sleep(0.2)
        baseline = len(publish_ms)
        started = time.monotonic()
        for _ in range(6):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /stats HTTP/1.1\r\n")
            s.setblocking(False)
            slow.append(s)
        trickler = threading.Thread(target=trickle, args=(slow, started, closed_after, 4.0), daemon=True)
        trickler.start()
        extra = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]  # 10 > the cap of 8
        time.sleep(0.2)
        answers = []
        for s in extra:
            s.setblocking(False)
            try:
                answers.append(s.recv(200))
            except BlockingIOError:
                answers.append(b"")  # accepted: waits for its request
            s.close()
        assert sum(a.startswith(b"HTTP/1.0 503") and b"too many connections" in a for a in answers) == 2, answers
        wait_for(lambda: server.stats()["connections"] <= 6, timeout=2, what="the closed extras' slots")
        while trickler.is_alive():  # /stats and segmentation go on while the slow ones trickle
            status, seconds, _ = get_stats()
            assert status == 200 and seconds < 0.5, (status, seconds)
            time.sleep(0.2)
        assert len(closed_after) == 6, "slow connections still open after their header deadline"
        assert all(1.4 <= t <= 2.3 for t in closed_after.values()), closed_after
        facts = json.loads(get_stats()[2])
        assert facts["connections"] == 1 and facts["refused_connections"] == 2
        assert len(publish_ms) - baseline > 200 and max(publish_ms[baseline:]) < 50  # segmentation unaffected
    finally:
        stop.set()
        for s in slow:
            s.close()
        server.close()


# --- smaller ones ------------------------------------------------------------------------------

def test_unreadable_frames_are_counted_in_the_stats(exported, synth_root, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for f in sorted((synth_root / "val" / "images").glob("*.jpg")):
        (frames / f.name).write_bytes(f.read_bytes())
    (frames / "zz_broken.jpg").write_bytes(b"not a jpeg")
    (frames / "zz_empty.png").write_bytes(b"")
    stats = tmp_path / "s.json"
    result = run_edgeseg("run", exported["files"]["int8"]["path"], "--source", frames, "--stats-json", stats)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(stats.read_text())
    assert summary["frames"] == 4 and summary["unreadable_frames"] == 2
    assert "skipped 2 unreadable frames" in result.stdout


def test_a_folder_given_as_a_model_is_named_so(exported, run_dir, synth_root):
    folder = Path(exported["files"]["int8"]["path"]).parent
    frames = synth_root / "val" / "images"
    result = run_edgeseg("run", folder, "--source", frames)
    assert error_lines(result.stderr) == [
        f"edgeseg: error: {folder} is a folder, not a model file: give a .tflite or .onnx file "
        f"(it holds tiny_fp16.tflite, tiny_fp32.tflite, tiny_int8.tflite)"]
    result = run_edgeseg("run", run_dir, "--source", frames)
    assert error_lines(result.stderr) == [
        f"edgeseg: error: {run_dir} is a training run, not a model file: export it (edgeseg export {run_dir}) "
        f"and give a .tflite or .onnx file"]
    result = run_edgeseg("benchmark", folder)
    assert result.returncode == 1 and "is a folder, not a model file" in error_lines(result.stderr)[0]
