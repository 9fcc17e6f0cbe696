"""`edgeseg train`'s option rules, checked before any data is read: what --init, --qat and
--resume take, --data-mix, and a preset's device limits."""

from __future__ import annotations

import typer

from edgeseg.cli.common import flags_phrase

# What `--init RUN` takes from the run and cannot be changed: the model and its config.
INIT_REFUSED = {"config", "backbone", "alpha", "output_stride", "head", "aspp_filters", "decoder_filters",
                "backbone_weights", "bn_momentum", "resume", "preset", "aspp_rates"}
# What `--qat --from RUN` takes; `--resume` takes only the run's location.
QAT_OPTIONS = {"qat", "from_run", "qat_steps", "qat_lr_factor", "qat_freeze_bn", "decoder_upsample", "batch_size"}
RESUME_OPTIONS = {"resume", "run_dir", "name"}


def flag(name: str) -> str:
    return "--" + {"from_run": "from", "format": "format"}.get(name, name).replace("_", "-")


def check_target(preset: str, cfg) -> None:
    """A preset's device must take the configuration as the options left it, before an hour of
    training: refused in one line naming the limit."""
    from edgeseg.config.presets import TARGET_OF_PRESET
    from edgeseg.core.errors import ConfigError
    from edgeseg.export.imx500.limits import check_imx500

    if TARGET_OF_PRESET.get(preset) != "imx500":
        return
    verdict = check_imx500(cfg.model, None, cfg.data.eval_size)
    if verdict.refused:
        raise ConfigError(f"--preset {preset}: {verdict.line()}")
    typer.echo(verdict.line(), err=True)


def refuse_for_init(given: set[str], data) -> None:
    from edgeseg.core.errors import ConfigError

    if data is None:
        raise ConfigError("--init fine-tunes a run on new frames; give them with --data DIR")
    refused = sorted(given & INIT_REFUSED)
    if refused:
        raise ConfigError(f"--init takes the model and its settings from the run; "
                          f"{flags_phrase([flag(e) for e in refused], 'does not apply', 'do not apply')}")


def with_mix(config, text: str | None, finetuning: bool):
    """--data-mix [PATH:]SHARE applied to ``config`` (whose ``data.mix`` is the fine-tuned run's
    data with --init)."""
    from edgeseg.core.errors import ConfigError

    if text is None:
        return config
    path, _, share_text = text.rpartition(":")
    try:
        share = float(share_text)
    except ValueError:
        raise ConfigError(f"--data-mix takes [PATH:]SHARE, e.g. data/old:0.5, got {text!r}") from None
    if not 0 <= share < 1:
        raise ConfigError(f"--data-mix: the share must be in [0, 1), got {share_text}")
    if share == 0:
        return config.without("data__mix")
    if path:
        mix = {"root": path, "format": None, "split": "train", "holdout": None, "share": share}
    elif finetuning:
        mix = {**config.data.mix, "share": share}
    else:
        raise ConfigError("--data-mix SHARE mixes in the --init run's data; without --init give PATH:SHARE")
    return config.override(data__mix=mix)


def refuse_for_qat(given: set[str], qat: bool, from_run) -> None:
    """QAT fine-tunes an existing run: both --qat and --from, and none of the training options."""
    from edgeseg.core.errors import ConfigError

    if not qat or from_run is None:
        raise ConfigError("quantization-aware training needs both --qat and --from RUN")
    extra = sorted(given - QAT_OPTIONS)
    if extra:
        raise ConfigError(f"--qat fine-tunes an existing run; "
                          f"{flags_phrase([flag(e) for e in extra], 'does not apply', 'do not apply')} "
                          "(it takes --from, --qat-steps, --qat-lr-factor, --qat-freeze-bn, "
                          "--decoder-upsample, --batch-size)")


def refuse_for_training(given: set[str], resume: bool, run_dir, name) -> None:
    """QAT options without --qat, and options --resume would ignore (the run's config rules)."""
    from edgeseg.core.errors import ConfigError

    stray_qat = sorted(given & (QAT_OPTIONS - {"batch_size"}))
    if stray_qat:
        raise ConfigError(f"{flags_phrase([flag(e) for e in stray_qat], 'applies', 'apply')} only with --qat --from RUN")
    if resume:
        extra = sorted(given - RESUME_OPTIONS)
        if extra:
            raise ConfigError(f"--resume continues the run with its saved config; "
                              f"{flags_phrase([flag(e) for e in extra], 'would be ignored', 'would be ignored')}: "
                              "drop them, or start a new run")
        if run_dir is None and name is None:
            raise ConfigError("--resume needs --run-dir (or --name) of the run to continue")
