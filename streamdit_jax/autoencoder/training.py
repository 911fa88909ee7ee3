"""Training the video VAE on ``shapes`` clips: reconstruction error + a small KL, held-out PSNR."""

from __future__ import annotations

import grain
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from streamdit_jax.autoencoder.vae import VideoVAE
from streamdit_jax.config import Config
from streamdit_jax.data import pipeline
from streamdit_jax.data.shapes import ShapesDataset
from streamdit_jax.sharding import axes


def psnr(reconstruction: jax.Array, video: jax.Array) -> jax.Array:
    """PSNR in dB of videos in [-1, 1], per video [B]."""
    mse = jnp.mean(jnp.square((jnp.clip(reconstruction, -1, 1) - video) / 2.0), axis=(1, 2, 3, 4))
    return 10.0 * jnp.log10(1.0 / jnp.maximum(mse, 1e-10))


@nnx.jit
def _posterior_mean(model: VideoVAE, video: jax.Array) -> jax.Array:
    return model.posterior(video)[0]


class VAETask:
    """The trainer's task for the VAE (see streamdit_jax.train.Task)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.model_config = cfg.autoencoder
        shape = dict(resolution=cfg.data.resolution, fps=cfg.data.fps, frames=cfg.vae_train.frames)
        self.train_source = ShapesDataset(**shape, seed=cfg.seed, split="train")
        self.eval_source = ShapesDataset(**shape, seed=cfg.seed + 1, split="heldout")

    def build(self, rngs: nnx.Rngs) -> VideoVAE:
        return VideoVAE(self.cfg.autoencoder, rngs=rngs)

    def loss(self, model: VideoVAE, batch: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        video = batch["video"]
        mean, logvar = model.posterior(video)
        sample = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)
        reconstruction, _ = model.decode_raw(sample)
        l1 = jnp.mean(jnp.abs(reconstruction - video))
        mse = jnp.mean(jnp.square(reconstruction - video))
        kl = 0.5 * jnp.mean(jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar)
        error = mse if self.cfg.vae_train.reconstruction == "mse" else l1
        loss = error + self.cfg.vae_train.kl_weight * kl
        return loss, {"l1": l1, "mse": mse, "kl": kl, "psnr": jnp.mean(psnr(reconstruction, video))}

    def evaluate(self, model: VideoVAE, batch: dict) -> dict:
        """Reconstruction of the posterior mean, as the VAE is used (encode, then decode)."""
        video = batch["video"]
        mean, _ = model.posterior(video)
        reconstruction, _ = model.decode_raw(mean)
        return {
            "psnr": jnp.mean(psnr(reconstruction, video)),
            "l1": jnp.mean(jnp.abs(reconstruction - video)),
        }

    def batch_axes(self) -> dict[str, tuple]:
        return {"video": (axes.BATCH, None, None, None, None)}

    @staticmethod
    def _video(example: dict, position: int) -> dict[str, np.ndarray]:
        del position
        return {"video": example["video"]}

    def train_batches(self, batch_size: int, seed: int, process: int, processes: int) -> grain.IterDataset:
        return pipeline.train_batches(self.train_source, self._video, batch_size, seed, process, processes)

    def eval_batches(self, batch_size: int, count: int, process: int, processes: int) -> list[dict]:
        return pipeline.fixed_batches(self.eval_source, self._video, batch_size, count, process, processes)

    def on_save(self, model: VideoVAE) -> None:
        """Sets the latent statistics (per-channel mean and std) from held-out clips."""
        batches = self.eval_batches(self.cfg.vae_train.batch_size, self.cfg.vae_train.eval_batches, 0, 1)
        means = np.concatenate([np.asarray(_posterior_mean(model, b["video"])) for b in batches])
        channels = means.reshape(-1, means.shape[-1])
        model.latents_mean[...] = jnp.asarray(channels.mean(0))
        model.latents_std[...] = jnp.asarray(np.maximum(channels.std(0), 1e-6))


@nnx.jit
def _reconstruct(model: VideoVAE, video: jax.Array) -> jax.Array:
    return jnp.clip(model.decode_raw(model.posterior(video)[0])[0], -1.0, 1.0)


def evaluate_vae(vae: VideoVAE, cfg: Config, clips: int) -> tuple[dict[str, float], np.ndarray]:
    """Held-out PSNR of ``vae`` on the first ``clips`` held-out clips the trainer evaluates on: overall and
    per background; and an image [rows of original over reconstruction, frames 0, mid, last] in [-1, 1]."""
    from streamdit_jax.data.shapes import BACKGROUNDS

    source = VAETask(cfg).eval_source
    scores: dict[str, list[float]] = {}
    rows = []
    for i in range(clips):
        item = source[i]
        video = item["video"][None]
        reconstruction = np.asarray(_reconstruct(vae, jnp.asarray(video)))
        score = float(psnr(jnp.asarray(reconstruction), jnp.asarray(video))[0])
        scores.setdefault(BACKGROUNDS[int(item["factors"]["background"])], []).append(score)
        scores.setdefault("all", []).append(score)
        if i < 6:
            frames = (0, video.shape[1] // 2, video.shape[1] - 1)
            rows.append(
                np.concatenate([np.concatenate([video[0, t], reconstruction[0, t]]) for t in frames], 1)
            )
    return {name: float(np.mean(values)) for name, values in scores.items()}, np.concatenate(rows, 1)
