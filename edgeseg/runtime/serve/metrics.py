"""``GET /metrics`` of the preview server: the run's statistics in the Prometheus text format
(version 0.0.4), so a fleet of boards is scraped by Prometheus and drawn by Grafana instead of
watched one page at a time. Built from the same facts as ``/stats``; names start ``edgeseg_``,
times are in seconds and frequencies in hertz, as Prometheus' naming rules ask."""

from __future__ import annotations

import math

from edgeseg.runtime.run.health import THROTTLE_NOW

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Text:
    def __init__(self):
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, help_text: str, samples) -> None:
        """``samples``: a number, or [(labels dict, number)]; None values are left out (unknown)."""
        if not isinstance(samples, list):
            samples = [({}, samples)]
        samples = [(labels, v) for labels, v in samples if v is not None and not
                   (isinstance(v, float) and math.isnan(v))]
        if not samples:
            return
        self.lines += [f"# HELP edgeseg_{name} {help_text}", f"# TYPE edgeseg_{name} {kind}"]
        for labels, value in samples:
            tags = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self.lines.append(f"edgeseg_{name}{{{tags}}} {float(value)!r}" if tags else f"edgeseg_{name} {float(value)!r}")


def prometheus_text(stats: dict) -> str:
    """The exposition text for ``stats`` (the preview server's /stats facts)."""
    out = _Text()
    if stats.get("model"):
        out.metric("model_info", "gauge", "The model running (value 1).",
                   [({"model": stats["model"], "precision": stats.get("precision", ""),
                      "backend": stats.get("backend", "")}, 1)])
    out.metric("frames_total", "counter", "Frames segmented since the run started.", stats.get("frames"))
    out.metric("dropped_frames_total", "counter", "Camera frames replaced by a newer one before the model saw them.",
               stats.get("dropped_frames"))
    out.metric("reconnects_total", "counter", "Attempts to open the live source again (while it was down, or not up "
               "yet at the start).", stats.get("reconnects"))
    out.metric("reconnected_total", "counter", "Attempts to open the live source that succeeded.",
               stats.get("reconnected"))
    out.metric("reloads_total", "counter", "Times the model file was reloaded (SIGHUP).", stats.get("reloads", 0))
    out.metric("fps", "gauge", "Frames per second over the recent window.", stats.get("fps"))
    out.metric("last_frame_age_seconds", "gauge", "Seconds since the newest frame was segmented (grows while a "
               "camera is down; the other values are those of that frame).", stats.get("last_frame_age_s"))
    quantiles = stats.get("stages_quantiles_ms") or {}
    out.metric("stage_latency_seconds", "gauge", "Latency per stage over the recent window, by quantile.",
               [({"stage": stage, "quantile": q}, ms / 1000.0) for stage, qs in quantiles.items()
                for q, ms in sorted(qs.items())])
    out.metric("agreement_miou", "gauge", "mIoU of the model's masks against the float model's (--compare).",
               stats.get("agreement_miou"))
    out.metric("labelled_miou", "gauge", "mIoU against labels (--labels).", stats.get("labelled_miou"))
    health = stats.get("health") or {}
    out.metric("cpu_temperature_celsius", "gauge", "CPU temperature.", health.get("cpu_temp_c"))
    mhz = health.get("cpu_mhz")
    out.metric("cpu_frequency_hertz", "gauge", "Frequency of the fastest CPU core now.",
               None if mhz is None else mhz * 1e6)
    throttled = health.get("throttled")
    if throttled is not None:  # known (a Raspberry Pi's vcgencmd): every flag, 0 or 1
        out.metric("throttled", "gauge", "What limits the board now (vcgencmd get_throttled), by reason.",
                   [({"reason": reason}, int(reason in throttled)) for reason in THROTTLE_NOW.values()])
    since = health.get("throttled_since_boot")
    out.metric("throttled_since_boot", "gauge", "Whether the board was limited at any time since boot.",
               None if since is None else int(since))
    out.metric("viewers", "gauge", "Clients streaming the overlay now.", stats.get("clients"))
    return "\n".join(out.lines) + "\n"
