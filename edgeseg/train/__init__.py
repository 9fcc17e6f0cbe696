"""Training: the fit loop, callbacks, schedule, distribution strategy."""

from edgeseg.train.fit import load_run_model, train

__all__ = ["load_run_model", "train"]
