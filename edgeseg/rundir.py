"""The layout of a training run directory (TF-free).

::

    RUN/config.yaml         resolved TrainConfig (what --resume, evaluate and export rebuild)
    RUN/dataset.json        class names, colours, dataset format and root
    RUN/best.h5             weights with the best validation mIoU; RUN/best.json its scores
    RUN/last.h5             weights at the end of training
    RUN/qat.npz, qat.json   quantization-aware fine-tuned weights (`edgeseg train --qat --from RUN`)
    RUN/backup/             BackupAndRestore state while a run is in progress
    RUN/history.csv, RUN/logs/ (TensorBoard), RUN/summary.json
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgeseg.core.files import write_json_atomic  # noqa: F401  (re-exported)
from edgeseg.core.errors import ConfigError


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def dataset(self) -> Path:
        return self.path / "dataset.json"

    @property
    def best_weights(self) -> Path:
        return self.path / "best.h5"

    @property
    def best_json(self) -> Path:
        return self.path / "best.json"

    @property
    def last_weights(self) -> Path:
        return self.path / "last.h5"

    @property
    def qat_weights(self) -> Path:
        return self.path / "qat.npz"

    @property
    def qat_json(self) -> Path:
        return self.path / "qat.json"

    @property
    def backup(self) -> Path:
        return self.path / "backup"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    def has_backup(self) -> bool:
        """Whether an interrupted training left a checkpoint to resume from."""
        return self.backup.is_dir() and any(p.is_file() for p in self.backup.rglob("*"))

    def exists(self) -> bool:
        return self.config.is_file()

    def require(self) -> "RunDir":
        if not self.path.is_dir():
            raise ConfigError(f"run directory not found: {self.path}")
        if not self.exists():
            raise ConfigError(f"not a training run (no config.yaml): {self.path}")
        return self

    def weights(self) -> Path:
        """The checkpoint the run ships (``summary.json``'s ``shipped``: the best on validation
        unless the run was told to ship its last), else the best, else the last one."""
        shipped = self.read_json(self.summary).get("shipped")
        if shipped and (self.path / shipped).is_file():
            return self.path / shipped
        for path in (self.best_weights, self.last_weights):
            if path.is_file():
                return path
        raise ConfigError(f"run {self.path} has no weights yet (no best.h5 or last.h5)")

    def read_json(self, path: Path) -> dict:
        return json.loads(path.read_text()) if path.is_file() else {}

