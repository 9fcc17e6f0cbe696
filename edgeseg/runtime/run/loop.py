"""The `edgeseg run` loop: frames -> segmenter -> outputs, with live statistics and, optionally,
scores against labels and a float model. Decoding, inference and the rest overlap in threads."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.core.files import OutputError, write_json_atomic
from edgeseg.runtime.run.scores import Comparison, LabelLookup, LabelScore
from edgeseg.runtime.run.health import HealthMonitor
from edgeseg.runtime.run.outputs import SEGMENT_SECONDS, Outputs
from edgeseg.runtime.run.stats import RunStats
from edgeseg.runtime.run.workers import Checkpoints, Finisher, prepared_frames

log = logging.getLogger("edgeseg")
STATS_EVERY = 10.0  # --stats-every's default: seconds between the --stats-json snapshots
# warnings that mean an output the user asked for is missing something: the run exits 1
NOT_WRITTEN = ("video_not_written", "masks_not_written", "stats_not_written", "collect_not_written")


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
    save_segment: float | None = SEGMENT_SECONDS  # seconds of each --save file (None: one file)
    stats_every: float = STATS_EVERY  # seconds between the --stats-json snapshots written during the run
    source_counts: object = None  # SourceCounts of a file or folder source (frames skipped as unreadable)
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
        self.not_written: dict[str, str] = {}  # output -> the first failure to write it, in one line
        # handle() and the checkpoint thread (segments closed, stats written while frames stop)
        self.lock = threading.RLock()
        self._stats_at = time.monotonic()
        # before the outputs: a refused --collect folder leaves no video or mask folder behind
        self.collector = options.collect.open(meta, seg.path.name, self.warn) if options.collect else None
        self.collected: dict | None = None
        self.outputs = Outputs(meta, show=options.show, save=options.save, save_masks=options.save_masks,
                               serve=options.serve, draw=options.draw, alpha=options.alpha,
                               save_fps=options.save_fps, warn=self.warn, save_segment=options.save_segment)
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
        if kind in NOT_WRITTEN:
            self.not_written.setdefault(kind, message)

    def _label(self, frame, pred):
        if not self.labels:
            return None
        # every label is checked before it is scored; one that cannot be right is said once and counted
        label, refusal = self.labels.check(frame.name, pred.shape)
        self.truth.looked_up(self.labels.folder, frame.name, label, refusal)
        if refusal is not None:
            self.warn(refusal.kind, refusal.message)
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
        ``labels``: a future of ``seg.finish(pending)`` under way in a pool thread (awaited unlocked)."""
        pred = labels.result() if labels is not None else None
        with self.lock:
            self._handle(frame, pending, seg, pred)

    def checkpoint(self) -> None:
        """What a power cut must not take (the checkpoint thread, about every second, frames or
        not): the video segment closed once it is old enough, and the --stats-json snapshot written
        every ``stats_every`` seconds (atomically: the file on disk is at most one period old)."""
        with self.lock:
            self.outputs.tick()
            due = self.options.stats_json and time.monotonic() - self._stats_at >= self.options.stats_every
            snapshot = self.summary(in_progress=True) if due else None
        if snapshot is not None:
            self._stats_at = time.monotonic()
            self.write_stats(snapshot)

    def write_stats(self, summary: dict) -> bool:
        """--stats-json, atomically; a refused write is a counted warning (the run goes on)."""
        try:
            write_json_atomic(self.options.stats_json, summary)
        except OutputError as e:
            self.warn("stats_not_written", str(e))
            return False
        return True

    def _handle(self, frame, pending, seg=None, pred=None) -> None:
        stats = self.stats
        pred = pred if pred is not None else (seg or self.seg).finish(pending)
        stats.add("capture", frame.capture_ms)
        for stage, ms in pending.times.items():
            stats.add(stage, ms)
        seen = (seg or self.seg).seen(pending)  # an IMX500 labels only its ROI of the frame
        label = self._label(frame, pred)
        if label is not None:
            label = label[seen]
            self.truth.add(label, pred[seen])
        disagreement = None
        if self.comparison is not None and stats.frames % self.options.compare_every == 0:
            float_pred = self.compare.predict(np.ascontiguousarray(frame.image[seen]))
            self.comparison.add(pred[seen], float_pred, label)
            disagreement = float(np.mean(float_pred != pred[seen]))
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
            out["reconnected"] = self.reader.reconnected
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
        # not while a frame is being written; a finisher stuck past its drain (ok False) is not waited for
        locked = self.lock.acquire(timeout=-1 if ok else 5.0)
        try:
            self.outputs.close(ok)
            if self.reader is not None:
                self.reader.stop()
        except Exception as e:  # noqa: BLE001 - re-raised unless another error is in flight
            if ok:
                raise
            log.warning("while stopping after an error: %s", e)
        finally:  # the frames chosen so far are written whatever happened to the run
            if locked:
                self.lock.release()
            if self.collector is not None:
                self.collected = self.collector.close()

    def summary(self, in_progress: bool = False) -> dict:
        """The run's summary (--stats-json); ``in_progress``: a snapshot taken while it runs."""
        meta = self.seg.meta
        out = {"model": str(self.seg.path), "precision": meta.precision, "backend": self.seg.backend.description,
               "interrupted": self.interrupted, "in_progress": in_progress, "written_at": time.time(),
               **self.stats.summary(), **self.truth.summary(meta.class_names)}
        if self.options.pipeline and self.options.post_threads > 1:
            out["post_threads"] = self.options.post_threads
        if self.stopped_by:
            out["stopped_by"] = self.stopped_by
        if self.reloads:
            out["reloads"] = self.reloads
        if self.reader is not None:
            out.update({"dropped_frames": self.reader.dropped, "reconnects": self.reader.reconnects,
                        "reconnected": self.reader.reconnected})
        if self.options.source_counts is not None:
            out["unreadable_frames"] = self.options.source_counts.unreadable
        if self.outputs.video is not None:
            out["video"] = self.outputs.video.summary()
        if self.comparison is not None:
            out["compare"] = {"float_model": str(self.compare.path), **self.comparison.summary(meta.class_names)}
        if self.collected is not None:
            out["collect"] = self.collected
        if self.warnings:
            out["warnings"] = dict(self.warnings)
        if self.not_written:
            out["not_written"] = dict(self.not_written)
        health = self.health.summary()
        if health:
            out["health"] = health
        return out


def run_stream(seg, frames, options: RunOptions, reader=None, compare=None, labels: LabelLookup | None = None) -> dict:
    """Process frames until the source ends, ``max_frames``, Ctrl-C or SIGTERM; returns the summary.

    With ``options.pipeline`` (the default) three threads overlap: decoding + letterbox (file
    and folder sources; live sources have their own reader thread, and are letterboxed here),
    inference (this thread), and post-processing + overlay + outputs (:class:`Finisher`, with
    ``options.post_threads`` threads doing the post-processing of consecutive frames side by
    side when there are more than one). A stop signal ends the run
    after the frame in flight, like the end of the source: the video is finished and the stats
    written. SIGHUP reloads the model before the next frame (:meth:`StreamRun.reload_model`).
    """
    from edgeseg.runtime.run.signals import RunSignals
    from edgeseg.runtime.sources.files import prefetch

    run = StreamRun(seg, options, reader, compare, labels)
    signals = options.signals or RunSignals()
    checkpoints = Checkpoints(run)
    finisher = Finisher(run.handle, options.post_threads) if options.pipeline else None
    if options.pipeline and reader is None:
        # the decoding thread also letterboxes and quantizes, off the thread that feeds the model
        frames = prefetch(prepared_frames(frames, run))
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
                    pending = model.infer_frame(frame, prepared)
                    if finisher is not None:
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
                if finisher is not None:
                    finisher.close()
        ok = True
    except KeyboardInterrupt:  # Ctrl-C / a second stop signal: finish what the finisher holds, if it can
        run.interrupted = True
        ok = finisher is None or finisher.drain()
    finally:
        checkpoints.stop()
        run.stopped_by = signals.stopped_by
        run.interrupted = run.interrupted or signals.stop
        run.close(ok)
    summary = run.summary()
    if options.stats_json and not run.write_stats(summary):
        summary = run.summary()  # with the stats' own failure in it
    return summary
