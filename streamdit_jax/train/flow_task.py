"""The trainer's task for the StreamDiT: buffered flow matching on latent buffers (docs/training.md)."""

from __future__ import annotations

import dataclasses
import math

import grain
import jax
from flax import nnx

from streamdit_jax.config import Config
from streamdit_jax.data.training import ExampleSource
from streamdit_jax.flow import Mixture, buffered_loss, loss_by_level, model_velocity
from streamdit_jax.model import StreamDiT
from streamdit_jax.sharding import axes
from streamdit_jax.text import TextEncoder


class LatentBatches:
    """The data side of the StreamDiT's tasks: batches of latent buffers and text states from
    ``self.examples`` (an :class:`ExampleSource`, or anything with its two batch methods)."""

    examples: ExampleSource

    def batch_axes(self) -> dict[str, tuple]:
        return {
            "latents": (axes.BATCH, None, None, None, None),
            "text": (axes.BATCH, None, None),
            "text_mask": (axes.BATCH, None),
        }

    def train_batches(self, batch_size: int, seed: int, process: int, processes: int) -> grain.IterDataset:
        return self.examples.train_batches(batch_size, seed, process, processes)

    def eval_batches(self, batch_size: int, count: int, process: int, processes: int) -> list[dict]:
        return self.examples.eval_batches(batch_size, count, process, processes)

    def on_save(self, model: StreamDiT) -> None:
        del model  # no state beyond the trained parameters


class FlowTask(LatentBatches):
    """Trains ``StreamDiT(cfg.model)`` on ``cfg.data`` under the buffer's partition mixture.

    The held-out evaluation uses one fixed noise draw, so its numbers are comparable across steps: the
    buffered loss and the loss with every frame at each of ``flow.EVAL_LEVELS``. Its buffered loss draws
    uniform levels whatever ``buffer.level_density``, so runs with different densities compare too.
    """

    def __init__(
        self,
        cfg: Config,
        vae: nnx.Module | None = None,
        text_encoder: TextEncoder | None = None,
        examples: ExampleSource | None = None,
    ):
        self.cfg = cfg
        self.model_config = cfg.model
        self.mixture = Mixture.from_config(cfg.buffer)
        self.eval_mixture = Mixture.from_config(dataclasses.replace(cfg.buffer, level_density="uniform"))
        # Any source with ExampleSource's train_batches/eval_batches (the benchmarks pass synthetic ones).
        self.examples = examples or ExampleSource(cfg, vae, text_encoder)
        self.tokens_per_example = math.prod(cfg.token_grid)

    def build(self, rngs: nnx.Rngs) -> StreamDiT:
        return StreamDiT(self.cfg.model, rngs=rngs)

    @staticmethod
    def _velocity(model: StreamDiT, batch: dict):
        velocity = model_velocity(model)
        return lambda latents, sigma: velocity(latents, sigma, batch["text"], batch["text_mask"])

    def loss(
        self, model: StreamDiT, batch: dict, key: jax.Array, frozen: None = None
    ) -> tuple[jax.Array, dict]:
        del frozen  # nothing rides along
        velocity = self._velocity(model, batch)
        return buffered_loss(velocity, batch["latents"], key, self.mixture, model.cfg.prediction)

    def evaluate(self, model: StreamDiT, batch: dict, frozen: None = None) -> dict[str, jax.Array]:
        del frozen
        key = jax.random.key(0)  # the same noise at every evaluation
        velocity, prediction = self._velocity(model, batch), model.cfg.prediction
        loss, _ = buffered_loss(velocity, batch["latents"], key, self.eval_mixture, prediction)
        levels = loss_by_level(
            velocity, batch["latents"], jax.random.fold_in(key, 1), self.mixture.reference, prediction
        )
        return {"loss": loss, **levels}
