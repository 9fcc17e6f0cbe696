"""``tf.distribute`` strategy selection: one device, all local GPUs, or several hosts."""

from __future__ import annotations

import json
import logging
import os

from edgeseg._tf import tf
from edgeseg.core.errors import ConfigError

log = logging.getLogger("edgeseg")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``auto``: MirroredStrategy over all GPUs when there are several, else the default;
    ``mirrored``: all local GPUs, or all logical CPU devices when there is no GPU;
    ``multiworker``: MultiWorkerMirroredStrategy configured by ``TF_CONFIG``;
    ``none``: the default strategy."""
    # physical, not logical, devices: listing logical ones initialises the runtime, after which
    # multi-worker collectives can no longer be configured
    gpus = tf.config.list_physical_devices("GPU")
    if name == "none" or (name == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    if name in ("auto", "mirrored"):
        devices = [d.name for d in tf.config.list_logical_devices("GPU" if gpus else "CPU")]
        log.info("MirroredStrategy over %s", ", ".join(devices))
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        raw = os.environ.get("TF_CONFIG")
        if not raw:
            raise ConfigError("--strategy multiworker needs TF_CONFIG (cluster and task) in the environment")
        try:
            cluster = json.loads(raw)
            cluster["cluster"]["worker"], cluster["task"]["index"]
        except (ValueError, KeyError, TypeError):
            raise ConfigError("TF_CONFIG must be JSON with cluster.worker and task.index") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"unknown strategy '{name}'")


def is_chief() -> bool:
    """True on the worker that writes checkpoints and logs (always, outside multi-worker)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return True
    tf_config = json.loads(raw)
    task = tf_config.get("task", {})
    if task.get("type") == "chief":
        return True
    # Without a chief task, worker 0 plays the chief (as in tf.distribute).
    return (task.get("type") == "worker" and task.get("index", 0) == 0
            and "chief" not in tf_config.get("cluster", {}))


def worker_index() -> int:
    """This worker's task index in ``TF_CONFIG`` (0 outside multi-worker training)."""
    raw = os.environ.get("TF_CONFIG")
    return int(json.loads(raw).get("task", {}).get("index", 0)) if raw else 0
