"""Learning-rate schedule: linear warm-up, then polynomial ("poly") decay as in DeepLab."""

from __future__ import annotations

from edgeseg._tf import keras, tf


class PolyDecayWithWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """``lr * step / warmup`` for the first ``warmup_steps``, then
    ``lr * (1 - (step - warmup) / (total - warmup)) ** power`` down to ``end_lr``.

    Driven by the optimizer's step counter, so a resumed run continues where it stopped.
    """

    def __init__(self, learning_rate: float, total_steps: int, warmup_steps: int = 0,
                 power: float = 0.9, end_lr: float = 0.0):
        self.learning_rate = float(learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(min(warmup_steps, max(total_steps - 1, 0)))
        self.power = float(power)
        self.end_lr = float(end_lr)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = tf.cast(max(self.warmup_steps, 1), tf.float32)
        decay_steps = tf.cast(max(self.total_steps - self.warmup_steps, 1), tf.float32)
        progress = tf.clip_by_value((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        poly = (self.learning_rate - self.end_lr) * (1.0 - progress) ** self.power + self.end_lr
        if self.warmup_steps == 0:
            return poly
        return tf.where(step < self.warmup_steps, self.learning_rate * (step + 1.0) / warm, poly)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "power": self.power, "end_lr": self.end_lr}
