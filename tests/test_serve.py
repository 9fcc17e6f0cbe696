"""The `--serve` preview server: access token off loopback, a cap on viewers, timeouts for
clients that stall, no encoding without viewers, frame sequence numbers, a clean stop."""

import http.client
import json
import socket
import threading
import time

import numpy as np
import pytest

from edgeseg.runtime.serve.server import MJPEGServer, is_loopback, parse_address
from edgeseg.runtime.run.stats import RunStats

FRAME = np.zeros((16, 16, 3), np.uint8)


def get(server, path, host="127.0.0.1", headers=None):
    conn = http.client.HTTPConnection(host, server.address[1], timeout=5)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.read() if response.status != 200 or "stream" not in path else b"", conn


def open_stream(server, query=""):
    conn = http.client.HTTPConnection("127.0.0.1", server.address[1], timeout=5)
    conn.request("GET", "/stream.mjpg" + query)
    response = conn.getresponse()
    return response, conn


def read_part(response):
    """One multipart frame: (sequence number, JPEG bytes)."""
    line = response.fp.readline()
    while line.strip() != b"--frame":
        line = response.fp.readline()
    headers = {}
    while True:
        line = response.fp.readline().strip()
        if not line:
            break
        key, _, value = line.decode().partition(":")
        headers[key.strip().lower()] = value.strip()
    body = response.fp.read(int(headers["content-length"]))
    return int(headers["x-frame-seq"]), body


def publish_until(server, condition, timeout=5.0):
    stats = RunStats()
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "condition not reached"
        server.publish(FRAME, stats)
        time.sleep(0.01)


@pytest.mark.parametrize("text, expected", [
    ("8080", ("127.0.0.1", 8080)), (":8080", ("127.0.0.1", 8080)), ("0.0.0.0:80", ("0.0.0.0", 80)),
    ("[::1]:9000", ("::1", 9000)), ("[::]:65535", ("::", 65535)), ("pi.local:8080", ("pi.local", 8080)),
])
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text, message", [
    ("0", "1 to 65535"), ("70000", "1 to 65535"), ("host:", "1 to 65535"), ("host:http", "1 to 65535"),
    ("::1:8080", "in brackets"), ("[::1]8080", r"\[IPv6\]:PORT"),
])
def test_parse_address_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        parse_address(text)


def test_loopback_needs_no_token_and_stats_are_json():
    server = MJPEGServer("127.0.0.1", 0)
    try:
        assert server.token is None and is_loopback("127.0.0.1") and not is_loopback("0.0.0.0")
        status, body, _ = get(server, "/")
        assert status == 200 and b"/stream.mjpg" in body
        server.publish(FRAME, RunStats())
        status, body, _ = get(server, "/stats")
        stats = json.loads(body)
        assert status == 200 and stats["frames"] == 0 and stats["clients"] == 0 and stats["seq"] == 0
    finally:
        server.close()


def test_non_loopback_bind_requires_the_token():
    server = MJPEGServer("0.0.0.0", 0)
    try:
        token = server.token
        assert token and len(token) >= 16 and f"?token={token}" in server.url
        for path in ("/", "/stats", "/metrics", "/stream.mjpg", f"/stats?token={token}x", "/stats?token="):
            status, _, _ = get(server, path)
            assert status == 401, path
        status, body, _ = get(server, f"/?token={token}")
        assert status == 200 and f"/stream.mjpg?token={token}".encode() in body
        status, _, _ = get(server, "/stats", headers={"Authorization": f"Bearer {token}"})
        assert status == 200
    finally:
        server.close()


def test_given_token_is_required_on_loopback_too():
    server = MJPEGServer("127.0.0.1", 0, token="s3cret")
    try:
        assert get(server, "/stats")[0] == 401
        assert get(server, "/stats?token=s3cret")[0] == 200
    finally:
        server.close()


def test_nothing_encoded_without_viewers_then_newest_frames_in_order():
    server = MJPEGServer("127.0.0.1", 0)
    try:
        for _ in range(5):
            server.publish(FRAME, RunStats())
        assert server.stats()["seq"] == 0  # nobody watched: nothing was encoded
        response, conn = open_stream(server)
        assert response.status == 200
        publish_until(server, lambda: server.stats()["seq"] >= 1)
        seqs = []
        for _ in range(5):
            server.publish(FRAME, RunStats())
            seq, body = read_part(response)
            assert body[:2] == b"\xff\xd8"  # a JPEG
            seqs.append(seq)
        for _ in range(20):  # a burst, then nothing: the last frame of the burst must still arrive
            server.publish(FRAME, RunStats())
        newest = server.stats()["seq"]
        while seqs[-1] < newest:
            seqs.append(read_part(response)[0])
        assert seqs == sorted(set(seqs)), seqs  # increasing, never the same frame twice
        assert seqs[-1] == newest
        conn.close()
    finally:
        server.close()


def test_viewer_cap_answers_503():
    server = MJPEGServer("127.0.0.1", 0, max_clients=2)
    try:
        streams = [open_stream(server) for _ in range(2)]
        assert all(r.status == 200 for r, _ in streams)
        publish_until(server, lambda: server.stats()["clients"] == 2)
        response, _ = open_stream(server)
        assert response.status == 503
        streams[0][0].close()
        streams[0][1].close()
        deadline = time.time() + 5
        while server.stats()["clients"] > 1:  # the slot comes back once the closed stream is noticed
            server.publish(FRAME, RunStats())
            assert time.time() < deadline
            time.sleep(0.01)
        response, _ = open_stream(server)
        assert response.status == 200
    finally:
        server.close()


def test_a_client_that_never_reads_is_dropped_and_blocks_nobody():
    server = MJPEGServer("127.0.0.1", 0, timeout=1.0)
    big = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)  # ~300 kB JPEGs
    try:
        stalled = socket.create_connection(("127.0.0.1", server.address[1]))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        idle = socket.create_connection(("127.0.0.1", server.address[1]))  # never sends a request
        t0 = time.perf_counter()
        worst = 0.0
        while time.perf_counter() - t0 < 4.0:
            t = time.perf_counter()
            server.publish(big, RunStats())
            worst = max(worst, time.perf_counter() - t)
            time.sleep(0.02)
        assert worst < 0.5  # publishing never waits for a client
        assert server.stats()["clients"] == 0  # the stalled stream timed out and left
        response, conn = open_stream(server)
        publish_until(server, lambda: server.stats()["clients"] == 1)
        server.publish(big, RunStats())
        assert read_part(response)[1][:2] == b"\xff\xd8"
        idle.settimeout(3)
        assert idle.recv(1) == b""  # the idle connection was closed by the server
        stalled.close()
        conn.close()
    finally:
        server.close()


def test_close_while_clients_are_connected_does_not_hang():
    server = MJPEGServer("127.0.0.1", 0, timeout=30.0)
    response, conn = open_stream(server)
    publish_until(server, lambda: server.stats()["clients"] == 1)
    idle = socket.create_connection(("127.0.0.1", server.address[1]))
    done = threading.Event()
    threading.Thread(target=lambda: (server.close(), done.set()), daemon=True).start()
    assert done.wait(3.0), "close() hung with clients connected"
    idle.close()
    conn.close()


def test_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        server = MJPEGServer("::1", 0)
    except OSError as e:
        pytest.skip(f"IPv6 loopback not available here: {e}")
    try:
        assert server.token is None and server.url.startswith("http://[::1]:")
        conn = http.client.HTTPConnection("::1", server.address[1], timeout=5)
        conn.request("GET", "/stats")
        assert conn.getresponse().status == 200
    finally:
        server.close()


def test_preview_rate_cap_skips_frames_but_never_the_stats():
    from types import SimpleNamespace

    server = MJPEGServer("127.0.0.1", 0, max_fps=5.0)
    try:
        stats = SimpleNamespace(fps=80.0, frames=0, line=lambda: "status", recent_quantiles=lambda: {})
        frame = np.zeros((16, 16, 3), np.uint8)
        assert not server.wants_frame()  # nobody watches: nothing drawn or encoded
        server._clients = 1  # a viewer, without the socket
        sent, t0 = [], time.monotonic()
        for i in range(20):  # 20 frames in ~0.4 s
            stats.frames = i + 1
            wanted = server.wants_frame()
            server.publish(frame, stats)
            sent.append(wanted)
            time.sleep(0.02)
        elapsed = time.monotonic() - t0
        assert sent[0] and sum(sent) <= 1 + 5.0 * elapsed and sum(sent) < 20 and server._seq == sum(sent)
        assert server.stats()["frames"] == 20  # the stats follow every frame
    finally:
        server._clients = 0
        server.close()


def test_metrics_are_prometheus_text_with_the_run_facts_and_the_token_rule():
    """/metrics parsed by prometheus_client's own parser: names, types, values from the run."""
    from prometheus_client.parser import text_string_to_metric_families

    stats = RunStats()
    for ms in (10.0, 20.0, 30.0, 40.0):
        stats.add("inference", ms)
        stats.frame_done()
    live = {"model": 'm "q".tflite', "precision": "int8", "dropped_frames": 7, "reconnects": 2,
            "agreement_miou": 0.93, "reloads": 1,
            "health": {"cpu_temp_c": 61.5, "cpu_mhz": 2400.0, "throttled": ["frequency capped"],
                       "throttled_since_boot": True}}
    server = MJPEGServer("0.0.0.0", 0)
    try:
        server.publish(None, stats, live)
        assert get(server, "/metrics")[0] == 401
        conn = http.client.HTTPConnection("127.0.0.1", server.address[1], timeout=5)
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {server.token}"})
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Content-Type").startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    finally:
        server.close()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    value = {f.name: f.samples[0].value for f in families.values() if len(f.samples) == 1}
    assert families["edgeseg_frames"].type == "counter" and value["edgeseg_frames"] == 4
    assert value["edgeseg_dropped_frames"] == 7 and value["edgeseg_reconnects"] == 2 and value["edgeseg_reloads"] == 1
    assert value["edgeseg_agreement_miou"] == pytest.approx(0.93) and value["edgeseg_cpu_temperature_celsius"] == 61.5
    assert value["edgeseg_cpu_frequency_hertz"] == 2.4e9 and value["edgeseg_throttled_since_boot"] == 1
    assert value["edgeseg_fps"] == pytest.approx(stats.fps)
    assert 0 <= value["edgeseg_last_frame_age_seconds"] < 5  # computed when scraped
    assert "edgeseg_labelled_miou" not in families  # not measured: absent, not 0
    latency = {(s.labels["stage"], s.labels["quantile"]): s.value for s in families["edgeseg_stage_latency_seconds"].samples}
    assert latency[("inference", "0.5")] == pytest.approx(0.025) and latency[("inference", "0.95")] == pytest.approx(0.0385)
    flags = {s.labels["reason"]: s.value for s in families["edgeseg_throttled"].samples}
    assert flags["frequency capped"] == 1 and flags["under-voltage"] == 0 and len(flags) == 4
    info = families["edgeseg_model_info"].samples[0].labels
    assert info == {"model": 'm "q".tflite', "precision": "int8", "backend": ""}


def test_a_wildcard_bind_prints_urls_another_machine_can_open(monkeypatch):
    server = MJPEGServer("0.0.0.0", 0)
    try:
        monkeypatch.setattr("edgeseg.runtime.serve.server.machine_addresses", lambda: ["10.1.2.3", "fd00::7"])
        port, token = server.address[1], server.token
        assert server.urls == [f"http://10.1.2.3:{port}/?token={token}", f"http://[fd00::7]:{port}/?token={token}"]
        monkeypatch.setattr("edgeseg.runtime.serve.server.machine_addresses", lambda: [])
        assert server.urls == [server.url]
    finally:
        server.close()
    from edgeseg.runtime.serve.server import machine_addresses

    monkeypatch.undo()
    assert all(not a.startswith("127.") and a.count(".") == 3 for a in machine_addresses())
