"""The run loop's helper threads: the second stage that finishes frames in order (with its
post-processing threads, where the cores are free), the decoding thread's letterbox, and the
periodic checkpoint (video segment closed, stats snapshot written)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import CancelledError

log = logging.getLogger("edgeseg")


class Finisher:
    """The second stage of the run loop, in its own thread: post-processing, statistics,
    comparison, overlay and outputs of frame n while the interpreter runs frame n+1 (LiteRT
    and OpenCV release the GIL). Frames are handled in order; an error is raised in the
    caller at the next ``submit`` or at ``close``."""

    def __init__(self, handle, post_threads: int = 1):
        import queue
        import threading

        self._handle = handle
        self._queue: queue.Queue = queue.Queue(maxsize=max(2, post_threads))
        self._error: BaseException | None = None
        self._pool = None  # post-processing of consecutive frames side by side (post_threads > 1)
        if post_threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(post_threads, thread_name_prefix="edgeseg-post")
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
                except CancelledError:  # the pool was shut down by an interruption: the frame is dropped
                    pass
                except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                    self._error = e

    def _raise(self):
        if self._error is not None:
            raise self._error

    def submit(self, frame, pending, model):
        """``model`` inferred ``pending`` from ``frame``: its labels are made in a pool thread
        (when there is a pool) and handed to ``handle`` in order."""
        self._raise()
        labels = self._pool.submit(model.finish, pending) if self._pool is not None else None
        self._queue.put((frame, pending, model, labels))

    def close(self):
        try:
            self._queue.put(None)
            self._thread.join()
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
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
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
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


MAX_POST_THREADS = 4


def default_post_threads(seg) -> int:
    """Post-processing threads for a model: one per core beyond the two the loop keeps busy
    (feeding the model, finishing frames), at most ``MAX_POST_THREADS``, where an accelerator runs
    the whole model and its logits are left to the CPU; otherwise one (a CPU backend's own threads
    hold the cores; a labels head leaves only a crop to do).

    Measured (docs/benchmarks.md, tools/bench/bench_accel.py): with a 2 ms stand-in for a GPU on
    this project's 2 cores, a second post thread did not help (0.91 of the inference rate against
    0.94 at 368x480); the x4 upsample and argmax of a CamVid frame take 2 ms on one of its cores and
    5 ms on one of an H200 machine's Xeon cores, where 1.9 ms inferences need three threads to keep
    up (issue 29). Not measured on a many-core machine with a real accelerator yet."""
    import os

    if not getattr(seg.backend, "leaves_cpu_free", False) or seg.meta.output != "logits" or seg.upsample == "fast":
        return 1
    return max(1, min(MAX_POST_THREADS, (os.cpu_count() or 1) - 2))


def prepared_frames(frames, run):
    """(frame, its input made by the running model) for each frame; a frame whose model was
    replaced since (a reload) is prepared again by the new one."""
    try:
        for frame in frames:
            yield frame, run.seg.prepare(frame.image)
    finally:
        if hasattr(frames, "close"):
            frames.close()
