"""Training configuration: frozen dataclasses, validated on construction, YAML in and out (the
sections are in :mod:`edgeseg.config.sections`).

A run directory keeps the fully resolved ``config.yaml`` (class weights and sizes filled in), so
``--resume``, ``evaluate`` and ``export`` rebuild exactly the trained model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from edgeseg.core.errors import ConfigError
from edgeseg.config.sections import (  # noqa: F401 - re-exported: callers import them from here
    OPTIMIZERS,
    LOSSES,
    CLASS_WEIGHTS,
    STRATEGIES,
    DATASET_FORMATS,
    HEADS,
    SHIP,
    DECODER_UPSAMPLING,
    QAT_STEPS,
    QAT_LR_FACTOR,
    FINETUNE_EPOCHS,
    FINETUNE_STEPS_PER_EPOCH,
    FINETUNE_LR_FACTOR,
    FINETUNE_MIX,
    DataSection,
    ModelConfig,
    OptimSection,
    LossSection,
)


@dataclass(frozen=True)
class TrainConfig:
    data: DataSection = field(default_factory=DataSection)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimSection = field(default_factory=OptimSection)
    loss: LossSection = field(default_factory=LossSection)
    seed: int = 0
    val_every: int = 1
    strategy: str = "auto"
    mixed_precision: bool = False
    xla: bool = False
    deterministic: bool = False
    backup_every_steps: int | None = None
    ship: str = "best"  # the checkpoint export/evaluate use: best on validation, or the last one
    init: str | None = None  # a run whose shipped weights this one starts from (fine-tuning)

    def __post_init__(self):
        if self.ship not in SHIP:
            raise ConfigError(f"ship must be one of {', '.join(SHIP)}, got '{self.ship}'")
        for name, size in (("crop size", self.data.crop_size), ("eval size", self.data.eval_size)):
            if size is not None:
                try:
                    self.model.check_input_size(size)
                except ConfigError as e:
                    raise ConfigError(f"{name}: {e}") from None
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got '{self.strategy}'")
        if self.val_every < 1:
            raise ConfigError(f"val_every must be >= 1, got {self.val_every}")

    def finetuning(self, run: str | Path) -> "TrainConfig":
        """The config of a run that fine-tunes this one (saved in ``run``) on new frames: the
        same model, sizes and class weights; a short schedule at a tenth of the learning rate,
        no weight average, the last weights shipped; this run's training data mixed into every
        batch and its val split watched (is the old place forgotten?). The new data's root and
        format are for the caller to set."""
        d, o = self.to_dict(), self.optim
        val_root, val_format = self.data.val_data()
        d["data"].update(root=None, format=None, holdout=None, train_split="train", val_root=val_root,
                         val_format=val_format,
                         mix={"root": self.data.root, "format": self.data.format, "split": self.data.train_split,
                              "holdout": self.data.holdout, "share": FINETUNE_MIX})
        d["optim"].update(epochs=FINETUNE_EPOCHS, steps_per_epoch=FINETUNE_STEPS_PER_EPOCH, ema=None,
                          learning_rate=o.learning_rate * FINETUNE_LR_FACTOR, warmup_steps=min(o.warmup_steps, 20))
        d.update(ship="last", val_every=FINETUNE_EPOCHS, init=str(run))
        return TrainConfig.from_dict(d)

    def without(self, *dotted: str) -> "TrainConfig":
        """This config with ``section__key`` settings set to None (``override`` skips Nones)."""
        d = self.to_dict()
        for key in dotted:
            section, _, name = key.partition("__")
            d[section][name] = None
        return TrainConfig.from_dict(d)

    # --- dict / YAML ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        def plain(v):
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            if isinstance(v, list):
                return [plain(x) for x in v]
            return v
        return {k: ({kk: plain(vv) for kk, vv in v.items()} if isinstance(v, dict) else plain(v))
                for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainConfig":
        d = dict(d or {})
        sections = {f.name: f for f in fields(cls)}
        unknown = set(d) - set(sections)
        if unknown:
            raise ConfigError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        kwargs = {}
        for name, value in d.items():
            kind = _SECTIONS.get(name)
            kwargs[name] = _section(kind, value, name) if kind else value
        return cls(**kwargs)

    def override(self, **dotted) -> "TrainConfig":
        """Apply ``section__key=value`` overrides (``None`` values are skipped)."""
        d = self.to_dict()
        for key, value in dotted.items():
            if value is None:
                continue
            section, _, name = key.partition("__")
            if name:
                if section not in d or name not in d[section]:
                    raise ConfigError(f"unknown setting {section}.{name}")
                d[section][name] = value
            else:
                if section not in d:
                    raise ConfigError(f"unknown setting {section}")
                d[section] = value
        return TrainConfig.from_dict(d)

    def save(self, path: Path) -> None:
        from edgeseg.core.files import write_text_atomic

        write_text_atomic(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of sections")
        return cls.from_dict(data)


_SECTIONS = {"data": DataSection, "model": ModelConfig, "optim": OptimSection, "loss": LossSection}


def _section(kind, value, name):
    if value is None:
        return kind()
    if not isinstance(value, dict):
        raise ConfigError(f"config section '{name}' must be a mapping")
    known = {f.name for f in fields(kind)}
    unknown = set(value) - known
    if unknown:
        raise ConfigError(f"unknown setting(s) in '{name}': {', '.join(sorted(unknown))}")
    try:
        return kind(**value)
    except TypeError as e:
        raise ConfigError(f"config section '{name}': {e}") from None
