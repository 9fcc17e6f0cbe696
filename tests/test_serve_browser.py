"""The `--serve` page in a real browser: headless Chromium loads it from a running `edgeseg run`,
and the page shows decoded frames and numbers that update."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("EDGESEG_REQUIRE_SYSTEM_TOOLS") == "1":
            pytest.fail("chromium is missing although `make test` installs it")
        pytest.skip("Chromium not installed (make test installs Debian's chromium)")
    return path


def browse(url: str, tmp_path, *args) -> str:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=4000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout


HOSTILE = '<img src=x onerror="document.body.dataset.pwned=1">'


def test_serve_page_in_headless_chromium(exported, synth_root, tmp_path):
    """The page as a person sees it, with a model whose metadata names a class in HTML: the name
    shows as text and no script runs."""
    from edgeseg.export.metadata import embed_metadata
    from edgeseg.runtime.model.metadata import load_metadata

    int8 = Path(exported["files"]["int8"]["path"])
    meta = load_metadata(int8)
    meta.class_names = [HOSTILE if name == "tree" else name for name in meta.class_names]
    model, float_model = tmp_path / "tiny_int8.tflite", tmp_path / "tiny_fp32.tflite"
    model.write_bytes(embed_metadata(int8.read_bytes(), meta))
    meta.precision = "fp32"
    float_model.write_bytes(embed_metadata(Path(exported["files"]["fp32"]["path"]).read_bytes(), meta))
    port = free_port()
    run = subprocess.Popen(
        [sys.executable, "-m", "edgeseg.cli.main", "run", model, "--source",
         synth_root / "val" / "images", "--loop", "--serve", f"0.0.0.0:{port}", "--serve-token", "s3cret",
         "--compare", float_model, "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        url = f"http://127.0.0.1:{port}/?token=s3cret"
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/stats?token=s3cret", timeout=2).read()
                break
            except OSError:
                assert run.poll() is None, run.communicate()[1][-2000:]
                assert time.time() < deadline, "the server never answered"
                time.sleep(0.5)
        dom = browse(url, tmp_path, "--dump-dom")
        body = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', re.search(r"<body[^>]*>", dom).group(0)))
        assert int(body["img-width"]) == 64  # the MJPEG stream decoded into the page's image
        assert int(body["updates"]) >= 2 and int(body["last-frames"]) > int(body["first-frames"])
        assert "tiny_int8.tflite (int8)" in dom and "agreement with float (mIoU)" in dom
        for name in ("sky", "road", "car", "pole"):  # the legend, from the model's metadata
            assert f"{name}</span>" in dom
        assert "&lt;img src=x onerror=\"document.body.dataset.pwned=1\"&gt;</span>" in dom  # shown as text
        assert "<img src=x" not in dom and "data-pwned" not in dom  # no element made, nothing ran
        assert 'id="conn" class="">live' in dom
        without_token = browse(f"http://127.0.0.1:{port}/", tmp_path, "--dump-dom")
        assert "access token required" in without_token
        browse(url, tmp_path, "--window-size=1100,560", f"--screenshot={tmp_path / 'page.png'}")
        assert (tmp_path / "page.png").stat().st_size > 10_000
    finally:
        run.terminate()
        run.wait(timeout=30)
