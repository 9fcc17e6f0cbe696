"""Live sources (cameras, network streams): :class:`LatestFrameReader` reads them in a daemon
thread that keeps only the newest frame, counts the frames it had to drop, and reconnects with
back-off when the signal is lost, for as long as the run lasts; a source that is not up yet when
the run starts (a camera that enumerates late after boot, a stream server still starting) is
waited for the same way. :func:`live_frames` hands the frames to the run loop."""

from __future__ import annotations

import logging
import threading
import time
from typing import Iterator

from edgeseg.runtime.sources.frame import Frame, open_capture

log = logging.getLogger("edgeseg")


class LatestFrameReader:
    """Reads a live source in a daemon thread and keeps only the latest frame.

    Args:
        spec: camera index or stream URL (anything ``cv2.VideoCapture`` opens).
        open_capture: factory returning an object with ``read()`` / ``release()``, or None when
            the source cannot be opened (now); tests pass a fake. A :class:`~edgeseg.core.errors.EdgesegError`
            it raises (a tool that is not installed) can never work: raised at once.
        backoff: first reconnect delay in seconds; doubles up to ``max_backoff``.

    ``reconnects`` counts every attempt to open the source again (at the start too),
    ``reconnected`` those that succeeded.
    """

    def __init__(self, spec, open_capture=open_capture, backoff: float = 0.5, max_backoff: float = 8.0,
                 name: str | None = None):
        self.spec = spec
        self.name = name or repr(spec)
        self._open = open_capture
        self.backoff, self.max_backoff = backoff, max_backoff
        self._lock = threading.Condition()
        self._frame: Frame | None = None
        self._fresh = False
        self.dropped = 0
        self.reconnects = 0
        self.reconnected = 0
        self.read_count = 0
        self.gave_up = False  # live_frames stopped waiting (--give-up-after)
        self._stop = threading.Event()
        self._cap, why = self._try_open()
        if self._cap is None:
            log.warning("cannot open %s%s; retrying until it comes up (--give-up-after to stop)",
                        self.name, f" ({why})" if why else "")
        self._thread = threading.Thread(target=self._loop, name="edgeseg-capture", daemon=True)
        self._thread.start()

    def _try_open(self):
        """``(capture or None, why not)``; an EdgesegError (it can never work) is raised."""
        from edgeseg.core.errors import EdgesegError

        try:
            return self._open(self.spec), ""
        except EdgesegError:
            raise
        except Exception as e:  # noqa: BLE001 - e.g. a CSI camera still starting: keep trying
            return None, str(e) or type(e).__name__

    def _loop(self):
        import cv2

        delay = self.backoff
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                ok, bgr = self._cap.read() if self._cap is not None else (False, None)
            except Exception as e:  # noqa: BLE001 - a driver error is a lost signal too
                log.warning("reading %s failed: %s", self.name, e)
                ok, bgr = False, None
            if not ok or bgr is None:
                if self._cap is not None:
                    why = self._cap.error_text() if hasattr(self._cap, "error_text") else ""
                    self._cap.release()
                    self._cap = None
                    log.warning("source %s lost%s; reconnecting", self.name, f" ({why})" if why else "")
                if self._stop.wait(delay):
                    break
                self.reconnects += 1
                try:
                    self._cap, why = self._try_open()
                except Exception as e:  # noqa: BLE001 - e.g. the camera tool was removed: keep trying
                    self._cap, why = None, str(e)
                if self._cap is None:
                    delay = min(delay * 2, self.max_backoff)
                    # said at debug level: live_frames says every 30 s that the source is still down
                    log.debug("source %s unavailable%s; retrying in %.1fs", self.name, f" ({why})" if why else "", delay)
                else:
                    self.reconnected += 1
                    delay = self.backoff
                    log.warning("source %s %s", self.name, "reconnected" if self.read_count else "opened")
                continue
            frame = Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), f"frame{self.read_count:06d}",
                          self.read_count, time.perf_counter(), 1000 * (time.perf_counter() - t0),
                          getattr(self._cap, "last_sensor", None))
            with self._lock:
                if self._fresh:
                    self.dropped += 1
                self._frame, self._fresh = frame, True
                self.read_count += 1
                self._lock.notify_all()
        if self._cap is not None:
            self._cap.release()

    def read(self, timeout: float = 5.0) -> Frame | None:
        """The newest frame not returned before; None if none arrives within ``timeout``."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._fresh or self._stop.is_set(), timeout):
                return None
            if not self._fresh:
                return None
            self._fresh = False
            return self._frame

    def stop(self):
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        self._thread.join(timeout=2.0)


def live_frames(reader: LatestFrameReader, give_up_after: float | None = None,
                poll: float = 1.0, warn_every: float = 30.0, stopping=None) -> Iterator[Frame]:
    """Frames from a live source for as long as the caller wants them: while the source is down
    the reader keeps reconnecting with back-off and this waits (saying so every ``warn_every``
    seconds); with ``give_up_after`` it ends after that many seconds without a frame, and when
    ``stopping()`` (a stop signal, checked every ``poll`` seconds) says so."""
    try:
        waiting_since = None
        last_warning = 0.0
        while not (stopping and stopping()):
            frame = reader.read(poll)
            if frame is not None:
                waiting_since = None
                yield frame
                continue
            now = time.monotonic()
            waiting_since = waiting_since or now
            waited = now - waiting_since
            if give_up_after is not None and waited >= give_up_after:
                reader.gave_up = True
                log.warning("no frame from %s for %.0fs; stopping (--give-up-after)", reader.name, waited)
                return
            if waited >= warn_every and now - last_warning >= warn_every:
                log.warning("no frame from %s for %.0fs; still trying (%d attempts so far; Ctrl-C to stop)",
                            reader.name, waited, reader.reconnects)
                last_warning = now
    finally:
        reader.stop()
