"""The run loop's helper threads: the second stage that finishes frames in order, and the
periodic checkpoint (video segment closed, stats snapshot written)."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("edgeseg")


class Finisher:
    """The second stage of the run loop, in its own thread: post-processing, statistics,
    comparison, overlay and outputs of frame n while the interpreter runs frame n+1 (LiteRT
    and OpenCV release the GIL). Frames are handled in order; an error is raised in the
    caller at the next ``submit`` or at ``close``."""

    def __init__(self, handle, depth: int = 2):
        import queue
        import threading

        self._handle = handle
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="edgeseg-finish", daemon=True)
        self._thread.start()

    def _loop(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self._handle(*item)
                except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                    self._error = e

    def _raise(self):
        if self._error is not None:
            raise self._error

    def submit(self, *item):
        self._raise()
        self._queue.put(item)

    def close(self):
        self._queue.put(None)
        self._thread.join()
        self._raise()

    def drain(self, timeout: float = 5.0) -> bool:
        """After an interruption: let the frames already handed over finish, at most ``timeout``
        seconds; whether the thread is done (its outputs may then be closed)."""
        import queue

        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        return not self._thread.is_alive()


class Checkpoints:
    """A thread that calls ``run.checkpoint()`` every ``every`` seconds until stopped: frames or
    not, the video segment is closed in time and the stats snapshot written."""

    def __init__(self, run, every: float = 0.25):
        self._stop = threading.Event()
        self._run, self._every = run, every
        self._thread = threading.Thread(target=self._loop, name="edgeseg-checkpoint", daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.wait(self._every):
            try:
                self._run.checkpoint()
            except Exception as e:  # noqa: BLE001 - a failed checkpoint is said, the run goes on
                log.warning("checkpoint failed: %s", e)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10.0)
