"""`--serve HOST:PORT`: the overlay as an MJPEG stream, a small HTML page and JSON stats, for
headless devices. Binds 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGE = b"""<!doctype html><html><head><title>edgeseg</title>
<style>body{background:#111;color:#eee;font:14px sans-serif;margin:1em}img{max-width:100%}</style></head>
<body><img src="/stream.mjpg"><pre id="s"></pre>
<script>setInterval(()=>fetch('/stats').then(r=>r.json()).then(j=>{document.getElementById('s').textContent=JSON.stringify(j,null,1)}),1000)</script>
</body></html>"""


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"--serve expects HOST:PORT or PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


class MJPEGServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 8080, quality: int = 80):
        self.quality = quality
        self._jpeg = None
        self._stats = {}
        self._cond = threading.Condition()
        self._closed = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/":
                    self._send(200, "text/html", PAGE)
                elif self.path == "/stats":
                    with server._cond:
                        body = json.dumps(server._stats).encode()
                    self._send(200, "application/json", body)
                elif self.path.startswith("/stream.mjpg"):
                    self.send_response(200)
                    self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                    self.end_headers()
                    try:
                        first = True
                        while True:
                            with server._cond:
                                if not first:  # the newest frame at once, then each new one
                                    server._cond.wait(timeout=5.0)
                                first = False
                                jpeg, closed = server._jpeg, server._closed
                            if closed:
                                return
                            if jpeg is None:
                                continue
                            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                             + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                    except (BrokenPipeError, ConnectionResetError):
                        return
                else:
                    self._send(404, "text/plain", b"not found")

            def _send(self, code, kind, body):
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.address = self.httpd.server_address
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="edgeseg-mjpeg", daemon=True)
        self._thread.start()

    def publish(self, rgb, stats) -> None:
        import cv2

        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            return
        with self._cond:
            self._jpeg = jpeg.tobytes()
            self._stats = {"fps": stats.fps, "frames": stats.frames, "status": stats.line()}
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
