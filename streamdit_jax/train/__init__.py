"""Training: the shared sharded trainer and the optimizer."""

from streamdit_jax.train.optim import learning_rate, make_optimizer
from streamdit_jax.train.trainer import NonFiniteLoss, Task, Trainer, TrainState

__all__ = ["NonFiniteLoss", "Task", "TrainState", "Trainer", "learning_rate", "make_optimizer"]
