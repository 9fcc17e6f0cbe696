"""`--serve HOST:PORT`: the overlay as an MJPEG stream, a small HTML page, JSON stats and
Prometheus metrics (``/metrics``), for watching a headless device from another machine.

It binds 127.0.0.1 unless told otherwise. Bound to any other address it is reachable from the
network, so every request must carry the access token (``?token=`` or ``Authorization: Bearer``);
without one it answers 401. At most ``max_clients`` streams at a time (503 beyond) and at most
``max_connections`` connections of any kind (503 beyond, answered without a thread); a request
must have sent its headers within ``header_timeout`` seconds in all (a client that trickles one
header line at a time is dropped then, not kept for as long as it keeps trickling); sockets time
out so idle or stalled clients are dropped, nothing is JPEG-encoded while nobody watches, and each
frame has a sequence number so a client gets the newest one and never the same one twice.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from edgeseg.runtime.serve.connections import CappedServer, DeadlineReader

def page(query: str) -> bytes:
    """The viewer page (``page.html`` beside this module): overlay, FPS, latency per stage,
    agreement, device health and the class legend, refreshed from /stats every second."""
    html = (Path(__file__).with_name("page.html")).read_text()
    return html.replace("{{QUERY}}", query).encode()


def parse_address(text: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); ValueError naming the problem."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"--serve expects [IPv6]:PORT, got {text!r}")
    elif text.count(":") > 1:
        raise ValueError(f"--serve: write an IPv6 address in brackets, [ADDRESS]:PORT, got {text!r}")
    else:
        host, _, port = text.rpartition(":")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"--serve: the port must be a number from 1 to 65535, got {port!r} in {text!r}")
    return host or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def machine_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback, by interface (Linux ioctl), else what
    its host name resolves to. Nothing is sent anywhere."""
    found: list[str] = []
    try:
        import fcntl
        import struct

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _, name in socket.if_nameindex():
                try:
                    packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
                except OSError:
                    continue  # an interface without an IPv4 address
                found.append(socket.inet_ntoa(packed[20:24]))
    except (ImportError, OSError, AttributeError):
        try:
            found = socket.gethostbyname_ex(socket.gethostname())[2]
        except OSError:
            found = []
    return [a for a in dict.fromkeys(found) if not a.startswith("127.")]


def _json_safe(value):
    """``value`` with NaN and infinities as None, so /stats is always valid JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class _Handler(BaseHTTPRequestHandler):
    """One request: the page, /stats, /metrics or the MJPEG stream of ``self.server.owner``."""

    @property
    def owner(self) -> "MJPEGServer":
        return self.server.owner

    def setup(self):
        self.timeout = self.server.client_timeout  # StreamRequestHandler sets it on the socket
        super().setup()
        self.rfile = DeadlineReader(self.rfile, self.connection, time.monotonic() + self.server.header_timeout)
        with self.owner._cond:
            self.owner._sockets.add(self.connection)

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self.rfile.deadline = None  # the headers are in: from here on the idle timeout alone
        self.connection.settimeout(self.server.client_timeout)
        return ok

    def finish(self):
        with self.owner._cond:
            self.owner._sockets.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, *args):
        pass

    def _authorised(self, query: dict) -> bool:
        if self.owner.token is None:
            return True
        given = (query.get("token") or [""])[0]
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header[len("Bearer "):].strip()
        return hmac.compare_digest(given.encode(), self.owner.token.encode())

    def do_GET(self):
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if not self._authorised(query):
            self._send(401, "text/plain", b"access token required: add ?token=... to the URL\n")
        elif parts.path == "/":
            self._send(200, "text/html; charset=utf-8", page(f"?token={self.owner.token}" if self.owner.token else ""))
        elif parts.path == "/stats":
            self._send(200, "application/json", json.dumps(self.owner.stats()).encode())
        elif parts.path == "/metrics":
            from edgeseg.runtime.serve.metrics import CONTENT_TYPE, prometheus_text

            self._send(200, CONTENT_TYPE, prometheus_text(self.owner.stats()).encode())
        elif parts.path == "/stream.mjpg":
            self._stream()
        else:
            self._send(404, "text/plain", b"not found\n")

    def _stream(self):
        owner = self.owner
        with owner._cond:
            full = owner._clients >= owner.max_clients
            if not full:
                owner._clients += 1
        if full:
            self._send(503, "text/plain", b"too many viewers\n")
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            sent = 0
            while True:
                with owner._cond:
                    owner._cond.wait_for(lambda: owner._closed or owner._seq > sent, timeout=self.server.client_timeout)
                    if owner._closed:
                        return
                    if owner._seq <= sent:
                        continue  # nothing new yet: keep the connection
                    jpeg, sent = owner._jpeg, owner._seq
                self.wfile.write(f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
                                 f"X-Frame-Seq: {sent}\r\n\r\n".encode() + jpeg + b"\r\n")
        except OSError:  # gone, reset, or stalled past the timeout
            return
        finally:
            with owner._cond:
                owner._clients -= 1

    def _send(self, code, kind, body):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class MJPEGServer:
    """Serves ``/`` (a page), ``/stream.mjpg`` and ``/stats`` from a daemon thread.

    Args:
        host, port: where to listen (port 0: any free port, see ``address``).
        token: required on every request; ``None`` generates one unless ``host`` is loopback
            (then no token is needed).
        max_clients: concurrent streams; more get 503.
        timeout: seconds a socket may stay idle or stalled before it is dropped.
        max_connections: open connections of any kind (default: 4 per stream, at least 32);
            more get 503 at once.
        header_timeout: seconds a request has, in all, to send its request line and headers.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, quality: int = 80, token: str | None = None,
                 max_clients: int = 4, timeout: float = 10.0, max_fps: float | None = None,
                 max_connections: int | None = None, header_timeout: float = 5.0):
        self.quality = quality
        self.max_fps = max_fps  # None: every frame offered is encoded while someone watches
        self._last_frame = -float("inf")
        self.max_clients = max_clients
        self.token = token if token is not None or is_loopback(host) else secrets.token_urlsafe(16)
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._stats: dict = {}
        self._published: float | None = None  # when the newest frame's facts came (monotonic)
        self._closed = False
        self._clients = 0
        self._sockets: set = set()
        self.httpd = CappedServer((host, port), _Handler, ipv6=":" in host,
                             max_connections=max_connections or max(32, 4 * max_clients))
        self.httpd.owner, self.httpd.client_timeout, self.httpd.header_timeout = self, timeout, header_timeout
        self.address = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="edgeseg-mjpeg", daemon=True)
        self._thread.start()

    @property
    def urls(self) -> list[str]:
        """Where another machine opens the page: for a wildcard bind (0.0.0.0, ::) one URL per
        address of this machine (a browser cannot open 0.0.0.0), else ``url``."""
        host, port = self.address
        if host not in ("0.0.0.0", "::"):
            return [self.url]
        query = f"?token={self.token}" if self.token else ""
        return [f"http://{f'[{a}]' if ':' in a else a}:{port}/{query}" for a in machine_addresses()] or [self.url]

    @property
    def url(self) -> str:
        host, port = self.address
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/" + (f"?token={self.token}" if self.token else "")

    @property
    def watching(self) -> bool:
        """Whether a client is streaming (frames are only drawn and encoded then)."""
        return self._clients > 0

    def wants_frame(self) -> bool:
        """Whether the next overlay would be sent: someone watches and, with ``max_fps``, the last
        one is at least 1/max_fps old (a 1280x720 overlay costs ~3 ms to draw and ~2 ms to encode:
        a viewer does not need every frame of an 80 FPS loop)."""
        if not self.watching:
            return False
        return self.max_fps is None or time.monotonic() - self._last_frame >= 1.0 / self.max_fps

    def stats(self) -> dict:
        with self._cond:
            age = time.monotonic() - self._published if self._published is not None else None
            return {**_json_safe(self._stats), "seq": self._seq, "clients": self._clients, "last_frame_age_s": age,
                    "connections": self.httpd.connections, "refused_connections": self.httpd.refused}

    def publish(self, rgb, stats, extra: dict | None = None) -> None:
        """Offer the newest overlay: encoded only when someone watches; the stats always
        (``extra``: more JSON-ready facts for /stats, e.g. health and agreement)."""
        jpeg = None
        if rgb is not None and self.wants_frame():
            import cv2

            self._last_frame = time.monotonic()
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            jpeg = buf.tobytes() if ok else None
        quantiles = stats.recent_quantiles()  # outside the lock: the viewers' threads wait on it
        facts = {"fps": stats.fps, "frames": stats.frames, "status": stats.line(),
                 "stages_ms": {stage: q[0.5] for stage, q in quantiles.items()}, "stages_quantiles_ms": quantiles,
                 **(extra or {})}
        with self._cond:
            self._published = time.monotonic()
            self._stats = facts
            if jpeg is not None:
                self._jpeg, self._seq = jpeg, self._seq + 1
                self._cond.notify_all()

    def close(self) -> None:
        """Stop serving; connected clients are disconnected, nothing waits for them."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.httpd.shutdown()
        self.httpd.server_close()
