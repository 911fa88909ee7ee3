"""Training an autoencoder on ``shapes`` clips (``streamdit train-vae``): reconstruction error plus the
kind's regulariser (the VAE's small KL), held-out PSNR; a kind without weights (``patch``) only has its
latent statistics measured (:func:`fit_statistics`)."""

from __future__ import annotations

import grain
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from streamdit_jax.autoencoder.base import LatentAutoencoder
from streamdit_jax.autoencoder.registry import build_autoencoder
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
    ``cfg.object_weight`` * saturation of ``video`` + ``cfg.edge_weight`` * how much that saturation
    changes from the pixel above and from the pixel to the left (objects' edges)."""
    difference = reconstruction - video
    error = jnp.square(difference) if cfg.reconstruction == "mse" else jnp.abs(difference)
    saturation = (jnp.max(video, axis=-1, keepdims=True) - jnp.min(video, axis=-1, keepdims=True)) / 2.0
    weight = 1.0 + cfg.object_weight * saturation
    if cfg.edge_weight:
        down = jnp.abs(jnp.diff(saturation, axis=2, prepend=saturation[:, :, :1]))
        right = jnp.abs(jnp.diff(saturation, axis=3, prepend=saturation[:, :, :, :1]))
        weight = weight + cfg.edge_weight * (down + right)
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
def _raw_latents(model: LatentAutoencoder, video: jax.Array) -> jax.Array:
    return model.raw_latents(video)


class AutoencoderTask:
    """The trainer's task for the autoencoder of ``cfg.autoencoder`` (see streamdit_jax.train.Task)."""

    tokens_per_example = None  # videos, not transformer tokens

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

    def build(self, rngs: nnx.Rngs) -> LatentAutoencoder:
        return build_autoencoder(self.cfg.autoencoder, rngs)

    def loss(
        self, model: LatentAutoencoder, batch: dict, key: jax.Array, frozen: None = None
    ) -> tuple[jax.Array, dict]:
        """The loss of the trained parts of each clip: its start (``vae_train.frames``) and, with a
        ``vae_train.context``, the frames after the context, which runs without gradients (the causal
        caches carry it). Nothing is ``frozen``."""
        del frozen
        cfg = self.cfg.vae_train
        video = batch["video"]
        parts = [video[:, : cfg.frames]]
        if cfg.context:
            parts += [video[:, cfg.frames : cfg.frames + cfg.context], video[:, cfg.frames + cfg.context :]]
        caches, outputs, regularisers = (None, None), [], []
        for i, part in enumerate(parts):
            context = i == 1  # no sampling, no loss, no gradients
            reconstruction, regulariser, caches = model.training_reconstruction(
                part, caches, None if context else jax.random.fold_in(key, i), cfg.latent_noise
            )
            if context:
                caches = jax.lax.stop_gradient(caches)
                continue
            outputs.append((part, reconstruction))
            regularisers.append(regulariser)
        video, reconstruction = (jnp.concatenate(x, axis=1) for x in zip(*outputs, strict=True))
        l1 = jnp.mean(jnp.abs(reconstruction - video))
        mse = jnp.mean(jnp.square(reconstruction - video))
        kl = jnp.mean(jnp.stack(regularisers))
        error = reconstruction_error(reconstruction, video, cfg)
        loss = error + cfg.kl_weight * kl
        return loss, {"l1": l1, "mse": mse, "kl": kl, "psnr": jnp.mean(psnr(reconstruction, video))}

    def evaluate(self, model: LatentAutoencoder, batch: dict, frozen: None = None) -> dict:
        """Reconstruction as the autoencoder is used (encode, then decode; the VAE's posterior mean)."""
        del frozen
        video = batch["video"]
        reconstruction = model.reconstruct(video)
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

    def on_save(self, model: LatentAutoencoder) -> None:
        """Sets the latent statistics (per-channel mean and std) from held-out clips."""
        batches = self.eval_batches(self.cfg.vae_train.batch_size, self.cfg.vae_train.eval_batches, 0, 1)
        fit_statistics(model, [b["video"] for b in batches])


def fit_statistics(model: LatentAutoencoder, videos: list[np.ndarray]) -> None:
    """Sets ``model``'s per-channel latent mean and std from its raw latents of ``videos`` [B, T, H, W, 3]."""
    raw = np.concatenate([np.asarray(_raw_latents(model, jnp.asarray(v))) for v in videos])
    channels = raw.reshape(-1, raw.shape[-1]).astype(np.float64)
    model.latents_mean[...] = jnp.asarray(channels.mean(0), jnp.float32)
    model.latents_std[...] = jnp.asarray(np.maximum(channels.std(0), 1e-6), jnp.float32)


@nnx.jit
def _reconstruct(model: LatentAutoencoder, video: jax.Array) -> jax.Array:
    return model.reconstruct(video)


DETECTOR_SCORES = ("colour", "shape", "position", "motion")


def evaluate_autoencoder(
    autoencoder: LatentAutoencoder, cfg: Config, clips: int, frames: int | None = None
) -> tuple[dict[str, float], np.ndarray]:
    """Held-out PSNR of ``autoencoder`` on the first ``clips`` held-out clips the trainer evaluates on
    (or on clips of ``frames`` frames of the same scenes), overall (``all``) and per background, and the
    shapes detector's scores on the true clips and on their reconstructions (``{score}_true``,
    ``{score}_reconstruction``): ``colour`` (objects at least 98% visible whose colour is found),
    ``shape`` (of those clear of the border, the shape is right), ``position`` (within 5% of the frame)
    and ``motion`` (2-second windows whose motion the track gives right). Also an image [rows of original
    over reconstruction, frames 0, mid, last] in [-1, 1]."""
    from streamdit_jax.data.shapes import BACKGROUNDS
    from streamdit_jax.eval.detect import detect, detector_scores
    from streamdit_jax.eval.metrics import track_motion_hits

    task = AutoencoderTask(cfg)
    source = task.eval_source if frames is None else task.heldout_clips(frames)
    scores: dict[str, list[float]] = {}
    hits: dict[str, list[np.ndarray]] = {}
    rows = []
    for i in range(clips):
        item = source[i]
        video = item["video"][None]
        reconstruction = np.asarray(_reconstruct(autoencoder, jnp.asarray(video)))
        score = float(psnr(jnp.asarray(reconstruction), jnp.asarray(video))[0])
        scores.setdefault(BACKGROUNDS[int(item["factors"]["background"])], []).append(score)
        scores.setdefault("all", []).append(score)
        for which, frames_ in (("true", video[0]), ("reconstruction", reconstruction[0])):
            det = detect(frames_)
            found = {**detector_scores(det, item["factors"]),
                     "motion": track_motion_hits(det, item["factors"], cfg.data.fps)}  # fmt: skip
            for name, values in found.items():
                hits.setdefault(f"{name}_{which}", []).append(values)
        if i < 6:
            shown = (0, video.shape[1] // 2, video.shape[1] - 1)
            rows.append(
                np.concatenate([np.concatenate([video[0, t], reconstruction[0, t]]) for t in shown], 1)
            )
    out = {name: float(np.mean(values)) for name, values in scores.items()}
    for name, values in hits.items():
        values = np.concatenate(values)  # none counted (e.g. no window to classify): NaN
        out[name] = float(values.mean()) if values.size else float("nan")
    return out, np.concatenate(rows, 1)


def prepare_autoencoder(
    cfg: Config, workdir, *, resume: bool, resuming: bool = False, progress: bool = True, on_log=None
) -> dict:
    """The autoencoder of ``cfg.autoencoder`` in ``workdir``: trained by the shared Trainer
    (``vae_train``, ``vae_optimizer``; from ``vae_train.init`` unless ``resuming``), or, for a kind
    without weights, its latent statistics measured on held-out clips and saved as step 0. Returns the
    trainer's summary (``{"end_step": 0}`` for a kind without weights); ``on_log`` goes to the Trainer."""
    from streamdit_jax.autoencoder.registry import autoencoder_class, restore_matching_autoencoder
    from streamdit_jax.checkpoint import save_params, saved_steps
    from streamdit_jax.train import Trainer

    if not autoencoder_class(cfg.autoencoder.kind).trainable:
        if not (resume and saved_steps(workdir)):
            autoencoder = build_autoencoder(cfg.autoencoder, nnx.Rngs(cfg.seed))
            AutoencoderTask(cfg).on_save(autoencoder)
            save_params(workdir, cfg.autoencoder, nnx.state(autoencoder))
        return {"end_step": 0}
    initial = None
    if cfg.vae_train.init and not resuming:  # an autoencoder of this preset's (e.g. Wan's VAE)
        initial = nnx.state(restore_matching_autoencoder(cfg.vae_train.init, cfg.autoencoder), nnx.Param)
    trainer = Trainer.for_stage(
        AutoencoderTask(cfg),
        cfg,
        "vae",
        workdir,
        resume=resume,
        initial=initial,
        progress=progress,
        on_log=on_log,
    )
    with trainer:
        return trainer.run()
