"""The preview server's connections: a threading HTTP server that caps how many it serves at once
(one more is answered 503 by the accepting thread), and a reader that gives a request's headers
one deadline."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from http.server import ThreadingHTTPServer


BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n"
        b"Connection: close\r\n\r\ntoo many connections\n")


class CappedServer(ThreadingHTTPServer):
    """Threads for at most ``max_connections`` connections; one more is answered 503 by the
    accepting thread itself and closed."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, ipv6: bool, max_connections: int):
        self.address_family = socket.AF_INET6 if ipv6 else socket.AF_INET
        self.max_connections = max_connections
        self.connections = 0
        self.refused = 0
        self._count_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        with self._count_lock:
            full = self.connections >= self.max_connections
            if full:
                self.refused += 1
            else:
                self.connections += 1
        if not full:
            super().process_request(request, client_address)
            return
        try:  # never blocks the accepting thread: the answer fits the socket's buffer
            request.setblocking(False)
            with contextlib.suppress(OSError):
                request.recv(65536)  # what the client sent, so closing does not reset the connection
            request.send(BUSY)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request, client_address):
        """A client gone mid-answer (reset, broken pipe, timed out) is no error of the server's:
        nothing to print; anything else is printed as socketserver does."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._count_lock:
                self.connections -= 1


class DeadlineReader:
    """The request's reader until its headers are in: every read waits at most what is left of
    one deadline for the request line and all the headers (a socket timeout alone restarts
    with each line a slow client sends)."""

    def __init__(self, raw, sock, deadline: float):
        self._raw, self._sock, self.deadline = raw, sock, deadline

    def _arm(self):
        if self.deadline is None:
            return
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request's headers took too long")
        self._sock.settimeout(left)

    def readline(self, *args):
        self._arm()
        return self._raw.readline(*args)

    def read(self, *args):
        self._arm()
        return self._raw.read(*args)

    def __getattr__(self, name):
        return getattr(self._raw, name)
