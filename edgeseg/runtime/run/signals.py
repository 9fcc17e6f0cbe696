"""How a service manager talks to `edgeseg run`: SIGTERM (``systemctl stop``) and SIGINT (Ctrl-C)
stop the run after the frame in flight, so the video is closed, the stats are written and the
exit code is 0; a second one stops at once (KeyboardInterrupt). SIGHUP (``systemctl reload``)
asks for the model file to be opened again at the next frame.

The handlers only set flags: they run in the main thread between two bytecodes, possibly while it
holds a lock, so they take none. The run loop reads the flags once a frame, and a live source
waiting for a frame reads ``stop`` through :meth:`RunSignals.stopping` at least once a second.
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("edgeseg")

STOP_SIGNALS = ("SIGTERM", "SIGINT")
RELOAD_SIGNAL = "SIGHUP"


class RunSignals:
    """Flags set by the signals while :meth:`installed` is active (main thread only; elsewhere,
    e.g. a run started from a worker thread, nothing is installed and the flags stay False)."""

    def __init__(self):
        self.stop = False
        self.reload = False
        self.stopped_by: str | None = None
        self._previous: dict = {}
        self._depth = 0  # entered by the CLI around the whole command and by the run loop

    def stopping(self) -> bool:
        return self.stop

    def _on_stop(self, signum, _frame):
        if self.stop:  # asked twice: do not wait for the frame in flight
            raise KeyboardInterrupt
        self.stop = True
        self.stopped_by = signal.Signals(signum).name

    def _on_reload(self, _signum, _frame):
        self.reload = True

    def __enter__(self) -> "RunSignals":
        self._depth += 1
        if self._depth > 1 or threading.current_thread() is not threading.main_thread():
            return self
        for name in STOP_SIGNALS:
            self._previous[name] = signal.signal(getattr(signal, name), self._on_stop)
        if hasattr(signal, RELOAD_SIGNAL):
            self._previous[RELOAD_SIGNAL] = signal.signal(getattr(signal, RELOAD_SIGNAL), self._on_reload)
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth:
            return
        for name, handler in self._previous.items():
            signal.signal(getattr(signal, name), handler)
        self._previous.clear()
