"""The `edgeseg run` loop: frames -> segmenter -> outputs, with live statistics and, optionally,
scores against labels and a float model. Decoding, inference and the rest overlap in threads."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.core.files import write_json_atomic
from edgeseg.runtime.run.scores import Comparison, LabelLookup, LabelScore
from edgeseg.runtime.run.health import HealthMonitor
from edgeseg.runtime.run.outputs import Outputs
from edgeseg.runtime.run.stats import RunStats

log = logging.getLogger("edgeseg")


@dataclass
class RunOptions:
    show: bool = False
    save: Path | None = None
    save_masks: Path | None = None
    stats_json: Path | None = None
    compare_every: int = 10
    max_frames: int | None = None
    status_every: float = 2.0
    alpha: float = 0.5
    draw: bool = False  # draw the overlay even with no window, video or server (benchmarks)
    save_fps: float | None = None  # the --save video's rate: a file's own; None: measured
    serve: object = None  # an MJPEGServer
    signals: object = None  # RunSignals: stop after the frame in flight, reload (None: made here)
    reload: object = None  # reload(running) -> a new Segmenter of the same model path (SIGHUP)
    pipeline: bool = True  # overlap decoding, inference and post-processing in threads
    # threads that post-process (upsample + argmax) consecutive frames side by side, with the
    # pipeline: for accelerators, which leave the CPU's cores free while they run (1: the
    # finishing thread does it itself; default_post_threads() chooses)
    post_threads: int = 1
    collect: object = None  # a CollectTarget: keep the frames worth labelling (--collect)
    echo: object = print


class _Finisher:
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


class StreamRun:
    """What one `edgeseg run` accumulates: statistics, scores against labels and a float model,
    problems met, and its outputs. ``handle`` takes one inferred frame."""

    def __init__(self, seg, options: RunOptions, reader=None, compare=None, labels: LabelLookup | None = None):
        meta = seg.meta
        self.seg, self.options, self.reader, self.compare, self.labels = seg, options, reader, compare, labels
        self.stats = RunStats()
        self.comparison = Comparison(meta.num_classes) if compare is not None else None
        self.truth = LabelScore(meta.num_classes)
        self.warnings: dict[str, int] = {}  # what could not be done, counted, in the summary
        # before the outputs: a refused --collect folder leaves no video or mask folder behind
        self.collector = options.collect.open(meta, seg.path.name, self.warn) if options.collect else None
        self.collected: dict | None = None
        self.outputs = Outputs(meta, show=options.show, save=options.save, save_masks=options.save_masks,
                               serve=options.serve, draw=options.draw, alpha=options.alpha,
                               save_fps=options.save_fps, warn=self.warn)
        self.health = HealthMonitor()
        self.health.sample()

        self._live, self._live_at = None, 0.0
        self.last_status = time.perf_counter()
        self.interrupted = False
        self.stopped_by: str | None = None
        self.reloads = 0

    def warn(self, kind: str, message: str, every_time: bool = False) -> None:
        """Count a problem; say it the first time (``every_time``: each time), the summary gives
        the count."""
        if every_time:
            log.warning("%s", message)
        elif kind not in self.warnings:
            log.warning("%s (counted in the summary)", message)
        self.warnings[kind] = self.warnings.get(kind, 0) + 1

    def _label(self, frame, pred):
        label = self.labels.get(frame.name) if self.labels else None
        if label is not None and label.shape != pred.shape:
            self.warn("labels_of_another_size", f"label {frame.name}.png is {label.shape[1]}x{label.shape[0]} "
                      f"but the frame is {pred.shape[1]}x{pred.shape[0]}; such frames are not scored")
            return None
        return label

    def reload_model(self) -> None:
        """Open the model file again (SIGHUP: a new model was copied over it). A model that does
        not load, or has other classes than the one running, is one warning and the old model
        goes on."""
        old = self.seg
        if self.options.reload is None:
            log.warning("reload asked, but this run cannot reload its model; going on with %s", old.path.name)
            return
        from edgeseg.runtime.model.scoring import describe_classes, same_classes

        try:
            new = self.options.reload(old)
            if not same_classes(new.meta.class_names, old.meta.class_names):
                raise ValueError(f"the new model has other classes: {describe_classes(new.meta.class_names)}")
        except Exception as e:  # noqa: BLE001 - any failure keeps the running model
            # said every time (a reload is rare and asked for)
            self.warn("reload_failed", f"reloading {old.path} failed, keeping the running model: {e}", every_time=True)
            return
        self.seg = new
        self.reloads += 1
        self._live_at = 0.0  # /stats shows the new model at once
        log.info("reloaded %s: %s, %s", new.path, new.meta.precision, new.backend.description)

    def handle(self, frame, pending, seg=None, labels=None) -> None:
        """Post-process, score and write one frame that ``seg`` (default: the running model)
        inferred: after a reload, frames in flight are finished by the model that ran them.
        ``labels``: a future of ``seg.finish(pending)`` already under way in another thread."""
        stats = self.stats
        pred = labels.result() if labels is not None else (seg or self.seg).finish(pending)
        stats.add("capture", frame.capture_ms)
        for stage, ms in pending.times.items():
            stats.add(stage, ms)
        label = self._label(frame, pred)
        if label is not None:
            self.truth.add(label, pred)
        disagreement = None
        if self.comparison is not None and stats.frames % self.options.compare_every == 0:
            float_pred = self.compare.predict(frame.image)
            self.comparison.add(pred, float_pred, label)
            disagreement = float(np.mean(float_pred != pred))
        if self.collector is not None:
            model = seg or self.seg
            logits = (lambda: model.frame_logits(pending)) if model.meta.output == "logits" else None
            self.collector.offer(frame, pred, logits, disagreement)
        stats.frame_done()
        now = time.perf_counter()
        if now - self.last_status >= self.options.status_every:
            health = self.health.sample().line()
            extra = f"  dropped {self.reader.dropped}" if self.reader is not None else ""
            self.options.echo(stats.line() + extra + (f"  {health}" if health else ""))
            self.last_status = now
        if self.options.serve is not None and now - self._live_at >= 0.5:
            self._live, self._live_at = self.live(), now
        self.outputs.write(frame, pred, stats, self._live)

    def live(self) -> dict:
        """What the preview server shows next to the overlay (refreshed twice a second)."""
        meta = self.seg.meta
        out = {"model": self.seg.path.name, "precision": meta.precision, "backend": self.seg.backend.description,
               "health": self.health.latest.to_dict(),
               "classes": [{"name": n, "color": list(c)} for n, c in zip(meta.class_names, meta.colors)]}
        if self.reader is not None:
            out["dropped_frames"] = self.reader.dropped
            out["reconnects"] = self.reader.reconnects
        if self.reloads:
            out["reloads"] = self.reloads
        if self.comparison is not None and self.comparison.frames:
            out["agreement_miou"] = self.comparison.summary(meta.class_names)["agreement_miou"]
        if self.truth.frames:
            out["labelled_miou"] = self.truth.summary(meta.class_names)["miou"]
        return out

    def close(self, ok: bool = True) -> None:
        """Release the outputs and the source; with ``ok`` False (the run failed) the partial
        video is removed. After a failure an error while closing is only logged: the failure the
        user must see is the first one."""
        try:
            self.outputs.close(ok)
            if self.reader is not None:
                self.reader.stop()
        except Exception as e:  # noqa: BLE001 - re-raised unless another error is in flight
            if ok:
                raise
            log.warning("while stopping after an error: %s", e)
        finally:  # the frames chosen so far are written whatever happened to the run
            if self.collector is not None:
                self.collected = self.collector.close()

    def summary(self) -> dict:
        meta = self.seg.meta
        out = {"model": str(self.seg.path), "precision": meta.precision, "backend": self.seg.backend.description,
               "interrupted": self.interrupted,
               **self.stats.summary(), **self.truth.summary(meta.class_names)}
        if self.options.pipeline and self.options.post_threads > 1:
            out["post_threads"] = self.options.post_threads
        if self.stopped_by:
            out["stopped_by"] = self.stopped_by
        if self.reloads:
            out["reloads"] = self.reloads
        if self.reader is not None:
            out.update({"dropped_frames": self.reader.dropped, "reconnects": self.reader.reconnects})
        if self.comparison is not None:
            out["compare"] = {"float_model": str(self.compare.path), **self.comparison.summary(meta.class_names)}
        if self.collected is not None:
            out["collect"] = self.collected
        if self.warnings:
            out["warnings"] = dict(self.warnings)
        health = self.health.summary()
        if health:
            out["health"] = health
        return out


MAX_POST_THREADS = 4


def default_post_threads(seg) -> int:
    """Post-processing threads for a model: one per core, at most ``MAX_POST_THREADS``, where an
    accelerator runs the whole model and its logits are left to the CPU; otherwise one (a CPU
    backend's own threads hold the cores; a labels head leaves only a crop to do).

    Measured (docs/benchmarks.md): a 2 ms stand-in for a GPU on this project's 2 cores, 368x480
    CamVid logits: 2 threads 0.82 of the inference rate against 0.78 with one; the x4 upsample
    and argmax of a CamVid frame take 2 ms on one of its cores, 5 on one of an H200 machine's
    Xeon cores, where 1.9 ms inferences need three threads to keep up."""
    import os

    if not getattr(seg.backend, "leaves_cpu_free", False) or seg.meta.output != "logits" or seg.upsample == "fast":
        return 1
    return max(1, min(MAX_POST_THREADS, os.cpu_count() or 1))


def _prepared(frames, run: StreamRun):
    """(frame, its input made by the running model) for each frame; a frame whose model was
    replaced since (a reload) is prepared again by the new one."""
    try:
        for frame in frames:
            yield frame, run.seg.prepare(frame.image)
    finally:
        if hasattr(frames, "close"):
            frames.close()


def run_stream(seg, frames, options: RunOptions, reader=None, compare=None, labels: LabelLookup | None = None) -> dict:
    """Process frames until the source ends, ``max_frames``, Ctrl-C or SIGTERM; returns the summary.

    With ``options.pipeline`` (the default) three threads overlap: decoding + letterbox (file
    and folder sources; live sources have their own reader thread, and are letterboxed here),
    inference (this thread), and post-processing + overlay + outputs (:class:`_Finisher`, with
    ``options.post_threads`` threads doing the post-processing of consecutive frames side by
    side when there are more than one). A stop signal ends the run
    after the frame in flight, like the end of the source: the video is finished and the stats
    written. SIGHUP reloads the model before the next frame (:meth:`StreamRun.reload_model`).
    """
    from edgeseg.runtime.run.signals import RunSignals
    from edgeseg.runtime.sources.files import prefetch

    run = StreamRun(seg, options, reader, compare, labels)
    signals = options.signals or RunSignals()
    finisher = _Finisher(run.handle, depth=max(2, options.post_threads)) if options.pipeline else None
    workers = None
    if finisher is not None and options.post_threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        workers = ThreadPoolExecutor(options.post_threads, thread_name_prefix="edgeseg-post")
    if options.pipeline and reader is None:
        # the decoding thread also letterboxes and quantizes, off the thread that feeds the model
        frames = prefetch(_prepared(frames, run))
    submitted = 0
    ok = False
    try:
        with signals:
            try:
                for frame in frames:
                    frame, prepared = frame if isinstance(frame, tuple) else (frame, None)
                    if signals.reload:
                        signals.reload = False
                        run.reload_model()
                    model = run.seg
                    pending = model.infer(frame.image, prepared)
                    if workers is not None:
                        finisher.submit(frame, pending, model, workers.submit(model.finish, pending))
                    elif finisher is not None:
                        finisher.submit(frame, pending, model)
                    else:
                        run.handle(frame, pending, model)
                    submitted += 1
                    if run.outputs.show and not run.outputs.show_latest():
                        break
                    if options.max_frames and submitted >= options.max_frames:
                        break
                    if signals.stop:
                        break
            finally:
                if hasattr(frames, "close"):
                    frames.close()  # stops and joins the decoding thread before anything exits
                try:
                    if finisher is not None:
                        finisher.close()
                finally:
                    if workers is not None:
                        workers.shutdown(cancel_futures=True)
        ok = True
    except KeyboardInterrupt:  # Ctrl-C / a second stop signal: finish what the finisher holds, if it can
        run.interrupted = True
        ok = finisher is None or finisher.drain()
    finally:
        run.stopped_by = signals.stopped_by
        run.interrupted = run.interrupted or signals.stop
        run.close(ok)
    summary = run.summary()
    if options.stats_json:
        write_json_atomic(options.stats_json, summary)
    return summary
