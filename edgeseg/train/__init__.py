"""Training: the fit loop, callbacks, schedule, distribution strategy."""

from edgeseg.train.fit import train

__all__ = ["train"]
