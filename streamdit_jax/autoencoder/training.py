"""Training the video VAE on ``shapes`` clips: reconstruction error + a small KL, held-out PSNR."""

from __future__ import annotations

import grain
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from streamdit_jax.autoencoder.vae import VideoVAE
from streamdit_jax.config import Config, DecoderTrainConfig, VAETrainConfig
from streamdit_jax.data import pipeline
from streamdit_jax.data.shapes import ShapesDataset
from streamdit_jax.sharding import axes


def psnr(reconstruction: jax.Array, video: jax.Array) -> jax.Array:
    """PSNR in dB of videos in [-1, 1], per video [B]."""
    mse = jnp.mean(jnp.square((jnp.clip(reconstruction, -1, 1) - video) / 2.0), axis=(1, 2, 3, 4))
    return 10.0 * jnp.log10(1.0 / jnp.maximum(mse, 1e-10))


def reconstruction_error(
    reconstruction: jax.Array, video: jax.Array, cfg: VAETrainConfig | DecoderTrainConfig
) -> jax.Array:
    """Mean per-pixel error (``cfg.reconstruction``: squared or absolute), each pixel weighted by 1 +
    ``cfg.object_weight`` * saturation of ``video``."""
    difference = reconstruction - video
    error = jnp.square(difference) if cfg.reconstruction == "mse" else jnp.abs(difference)
    saturation = (jnp.max(video, axis=-1, keepdims=True) - jnp.min(video, axis=-1, keepdims=True)) / 2.0
    weight = 1.0 + cfg.object_weight * saturation
    return jnp.mean(weight * error) / jnp.mean(weight)


def object_crop(example: dict, crop: tuple[int, int], seed: int, position: int) -> np.ndarray:
    """A ``crop`` (height, width) of a shapes clip around one of its objects (at a random frame, up to a
    quarter of the crop off centre), drawn from (seed, position): reproducible on resume. (0, 0) or the
    whole frame: the clip itself."""
    video = example["video"]
    (h, w), (height, width) = crop, video.shape[1:3]
    if not h or (h, w) == (height, width):
        return video
    rng = np.random.default_rng([seed, position])
    factors = example["factors"]
    frame, slot = rng.integers(len(video)), rng.choice(np.flatnonzero(factors["present"]))
    centre = factors["position"][frame, slot] * (height, width) + rng.uniform(-0.25, 0.25, 2) * (h, w)
    y, x = np.clip(np.round(centre - (h / 2, w / 2)).astype(int), 0, (height - h, width - w))
    return video[:, y : y + h, x : x + w]


@nnx.jit
def _posterior_mean(model: VideoVAE, video: jax.Array) -> jax.Array:
    return model.posterior(video)[0]


class VAETask:
    """The trainer's task for the VAE (see streamdit_jax.train.Task)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.model_config = cfg.autoencoder
        frames = cfg.vae_train.clip_frames
        self.train_source = ShapesDataset(cfg.data.resolution, cfg.data.fps, frames, seed=cfg.seed)
        self.eval_source = self.heldout_clips(frames)

    def heldout_clips(self, frames: int) -> ShapesDataset:
        """The held-out scenes (their own seed, unseen colour/motion pairs and wordings) as clips of
        ``frames`` frames."""
        cfg = self.cfg.data
        return ShapesDataset(cfg.resolution, cfg.fps, frames, seed=self.cfg.seed + 1, split="heldout")

    def build(self, rngs: nnx.Rngs) -> VideoVAE:
        return VideoVAE(self.cfg.autoencoder, rngs=rngs)

    def loss(self, model: VideoVAE, batch: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """The loss of the trained parts of each clip: its start (``vae_train.frames``) and, with a
        ``vae_train.context``, the frames after the context, which runs without gradients (the causal
        caches carry it)."""
        cfg = self.cfg.vae_train
        video = batch["video"]
        parts = [video[:, : cfg.frames]]
        if cfg.context:
            parts += [video[:, cfg.frames : cfg.frames + cfg.context], video[:, cfg.frames + cfg.context :]]
        caches, outputs = (None, None), []
        for i, part in enumerate(parts):
            mean, logvar, encoder_cache = model.posterior_chunk(part, caches[0])
            if i == 1:  # the context: no sampling, no loss, no gradients
                _, decoder_cache = model.decode_raw(mean, caches[1])
                caches = jax.lax.stop_gradient((encoder_cache, decoder_cache))
                continue
            noise = jax.random.normal(jax.random.fold_in(key, i), mean.shape)
            reconstruction, decoder_cache = model.decode_raw(mean + jnp.exp(0.5 * logvar) * noise, caches[1])
            caches = (encoder_cache, decoder_cache)
            outputs.append((part, reconstruction, mean, logvar))
        trained = [jnp.concatenate(x, axis=1) for x in zip(*outputs, strict=True)]
        video, reconstruction, mean, logvar = trained
        l1 = jnp.mean(jnp.abs(reconstruction - video))
        mse = jnp.mean(jnp.square(reconstruction - video))
        kl = 0.5 * jnp.mean(jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar)
        error = reconstruction_error(reconstruction, video, cfg)
        loss = error + cfg.kl_weight * kl
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

    def _cropped(self, example: dict, position: int) -> dict[str, np.ndarray]:
        return {"video": object_crop(example, self.cfg.vae_train.crop, self.cfg.seed, position)}

    def train_batches(self, batch_size: int, seed: int, process: int, processes: int) -> grain.IterDataset:
        return pipeline.train_batches(self.train_source, self._cropped, batch_size, seed, process, processes)

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


def evaluate_vae(
    vae: VideoVAE, cfg: Config, clips: int, frames: int | None = None
) -> tuple[dict[str, float], np.ndarray]:
    """Held-out PSNR of ``vae`` on the first ``clips`` held-out clips the trainer evaluates on (or on
    clips of ``frames`` frames of the same scenes): overall, per background, and ``objects_found``, the
    share of objects (at least 98% visible) whose colour the shapes detector finds in the reconstructed
    frame. Also an image [rows of original over reconstruction, frames 0, mid, last] in [-1, 1]."""
    from streamdit_jax.data.shapes import BACKGROUNDS
    from streamdit_jax.eval.detect import detect, detector_scores

    task = VAETask(cfg)
    source = task.eval_source if frames is None else task.heldout_clips(frames)
    scores: dict[str, list[float]] = {}
    found = []
    rows = []
    for i in range(clips):
        item = source[i]
        video = item["video"][None]
        reconstruction = np.asarray(_reconstruct(vae, jnp.asarray(video)))
        score = float(psnr(jnp.asarray(reconstruction), jnp.asarray(video))[0])
        scores.setdefault(BACKGROUNDS[int(item["factors"]["background"])], []).append(score)
        scores.setdefault("all", []).append(score)
        found.append(detector_scores(detect(reconstruction[0]), item["factors"])["colour"])
        if i < 6:
            shown = (0, video.shape[1] // 2, video.shape[1] - 1)
            rows.append(
                np.concatenate([np.concatenate([video[0, t], reconstruction[0, t]]) for t in shown], 1)
            )
    out = {name: float(np.mean(values)) for name, values in scores.items()}
    out["objects_found"] = float(np.concatenate(found).mean())
    return out, np.concatenate(rows, 1)
