"""What `edgeseg run --collect` is asked for: the policy that picks frames, and the target folder
with its options checked (the collector itself is :mod:`edgeseg.runtime.run.collect`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeseg.core import collection
from edgeseg.core.errors import ConfigError

WHEN = ("uncertain", "disagree", "every:N")


@dataclass(frozen=True)
class CollectPolicy:
    """Which frames are kept.

    Args:
        when: ``uncertain`` (the model's margin), ``disagree`` (against ``--compare``, on the
            frames it runs on) or ``every`` (every ``every``-th frame).
        threshold: keep each frame scoring at least this; None: the ``top`` best of each
            ``window`` frames.
        gap: seconds between kept frames, at least.
        dedup: a frame whose grey thumbnail differs from a recently kept one by less than this
            (mean absolute difference, 0-255) is a near-duplicate; 0 keeps them.
        max_frames: the folder holds at most this many frames (those from earlier runs count).
    """

    when: str = "uncertain"
    every: int = 0
    threshold: float | None = None
    top: int = 1
    window: int = 300
    gap: float = 2.0
    dedup: float = 4.0
    max_frames: int = 500

    def __post_init__(self):
        if self.when not in ("uncertain", "disagree", "every"):
            raise ConfigError(f"--collect-when must be one of {', '.join(WHEN)}, got {self.when!r}")
        if self.when == "every" and self.every < 1:
            raise ConfigError("--collect-when every:N needs N >= 1")
        if self.top < 1 or self.window < 1 or self.max_frames < 1:
            raise ConfigError("--collect-top, --collect-window and --collect-max must be >= 1")
        if self.top > self.window:
            raise ConfigError(f"--collect-top {self.top} is more than the --collect-window of {self.window} frames")
        if self.gap < 0 or self.dedup < 0:
            raise ConfigError("--collect-gap and --collect-dedup must be >= 0")

    @classmethod
    def parse_when(cls, text: str) -> tuple[str, int]:
        """``uncertain`` | ``disagree`` | ``every:N`` -> (when, N)."""
        kind, _, n = text.partition(":")
        if kind == "every":
            try:
                return kind, int(n)
            except ValueError:
                raise ConfigError(f"--collect-when every:N takes a whole number of frames, got {text!r}") from None
        if n or kind not in ("uncertain", "disagree"):
            raise ConfigError(f"--collect-when must be one of {', '.join(WHEN)}, got {text!r}")
        return kind, 0



@dataclass(frozen=True)
class CollectTarget:
    """What ``--collect`` asks for; the run opens it once the model is known."""

    folder: Path
    policy: CollectPolicy
    live: bool = False

    @classmethod
    def from_options(cls, folder: Path | None, live: bool, comparing: bool, **given) -> "CollectTarget | None":
        """``--collect`` and its ``--collect-*`` options (None: not given); options that do not
        go together are refused before anything opens."""
        if folder is None:
            stray = [name for name, value in given.items() if value is not None]
            if stray:
                raise ConfigError(f"--collect-{stray[0].replace('max_frames', 'max')} needs --collect DIR")
            return None
        kind, every = CollectPolicy.parse_when(given["when"] or "uncertain")
        if kind == "disagree" and not comparing:
            raise ConfigError("--collect-when disagree needs --compare FLOAT_MODEL")
        windowed = given["top"] is not None or given["window"] is not None
        if given["threshold"] is not None and windowed:
            raise ConfigError("--collect-threshold keeps every frame above it; --collect-top and --collect-window "
                              "choose the best of a window instead")
        if kind == "every" and (given["threshold"] is not None or windowed):
            raise ConfigError("--collect-when every:N keeps every Nth frame; --collect-threshold, --collect-top "
                              "and --collect-window do not apply")
        chosen = {k: v for k, v in given.items() if v is not None and k != "when"}
        collection.check_target(folder)
        return cls(Path(folder), CollectPolicy(when=kind, every=every, **chosen), live)

    def open(self, meta, model_name: str, warn):
        if meta.output != "logits" and self.policy.when == "uncertain":
            raise ConfigError(f"--collect-when uncertain needs a model that outputs logits; {model_name} "
                              "outputs labels (use disagree or every:N)")
        from edgeseg.runtime.run.collect import Collector

        return Collector(self.folder, meta, self.policy, warn, model_name, self.live)
