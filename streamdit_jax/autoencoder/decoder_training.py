"""Distilling the tiny decoder from an autoencoder's decoder (the VAE's) on its own latents of shapes
clips (``streamdit train-decoder``), and measuring it against the full decoder (``streamdit
eval-decoder``)."""

from __future__ import annotations

import functools

import grain
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from streamdit_jax.autoencoder.base import LatentAutoencoder
from streamdit_jax.autoencoder.tiny import TinyDecoder, vae_fingerprint
from streamdit_jax.autoencoder.training import AutoencoderTask, object_crop, psnr, reconstruction_error
from streamdit_jax.config import Config, TinyDecoderConfig
from streamdit_jax.data import pipeline
from streamdit_jax.data.shapes import ShapesDataset
from streamdit_jax.eval.detect import detect, detector_agreement, detector_scores
from streamdit_jax.sharding import axes


def _latents_and_frames(
    vae: LatentAutoencoder, video: jax.Array, key: jax.Array | None = None, noise: float = 0.0
) -> tuple[jax.Array, jax.Array]:
    """The autoencoder's normalised latents of ``video`` (the VAE's posterior mean, plus Gaussian noise
    of std ``noise`` when ``key`` is given) and its full decoder's frames of them."""
    latents = vae.encode(video)
    if key is not None and noise:
        latents = latents + noise * jax.random.normal(key, latents.shape)
    frames = vae.decode(latents)
    return jax.lax.stop_gradient(latents), jax.lax.stop_gradient(frames)


def tiny_decoder_config(cfg: Config, fingerprint: str = "") -> TinyDecoderConfig:
    """The tiny decoder ``decoder_train`` trains, for the preset's VAE (of that fingerprint)."""
    tc = cfg.decoder_train
    return TinyDecoderConfig.of(cfg.autoencoder, channels=tc.channels, blocks=tc.blocks, preview=tc.preview,
                                vae_fingerprint=fingerprint)  # fmt: skip


class DecoderTask:
    """The trainer's task (see streamdit_jax.train.Task) that distils a :class:`TinyDecoder` from
    ``vae``'s decoder; the VAE rides along as the trainer's frozen state (replicated on the mesh)."""

    tokens_per_example = None  # videos, not transformer tokens

    def __init__(self, cfg: Config, vae: LatentAutoencoder):
        self.cfg = cfg
        tc = cfg.decoder_train
        self.model_config = tiny_decoder_config(cfg, vae_fingerprint(vae))
        self.vae_graphdef, self.vae_state = nnx.split(vae)
        self.train_source = ShapesDataset(cfg.data.resolution, cfg.data.fps, tc.frames, seed=cfg.seed)
        self.eval_source = self.heldout(cfg)

    @staticmethod
    def heldout(cfg: Config, frames: int | None = None) -> ShapesDataset:
        """The held-out scenes (the VAE's: their own seed, unseen pairs) as clips of ``frames`` frames
        (default: ``decoder_train.frames``)."""
        data = cfg.data
        return ShapesDataset(data.resolution, data.fps, frames or cfg.decoder_train.frames, seed=cfg.seed + 1,
                             split="heldout")  # fmt: skip

    def frozen(self, mesh: Mesh) -> nnx.State:
        """The VAE's state, replicated on ``mesh``: the trainer's ``frozen`` argument."""
        return jax.device_put(self.vae_state, NamedSharding(mesh, PartitionSpec()))

    def build(self, rngs: nnx.Rngs) -> TinyDecoder:
        return TinyDecoder(self.model_config, rngs=rngs)

    def _pair(self, vae_state: nnx.State, video: jax.Array, key: jax.Array | None = None):
        vae = nnx.merge(self.vae_graphdef, vae_state)
        return _latents_and_frames(vae, video, key, self.cfg.decoder_train.latent_noise)

    def loss(self, model: TinyDecoder, batch: dict, key: jax.Array, frozen: nnx.State):
        """Object-weighted L1 between the tiny decoder's frames and the full decoder's, from the same
        latents (``decoder_train``'s docstring says why), noised by ``decoder_train.latent_noise``;
        ``frozen`` is the VAE's state (:meth:`frozen`)."""
        latents, target = self._pair(frozen, batch["video"], key)
        frames = model.decode(latents)
        loss = reconstruction_error(frames, target, self.cfg.decoder_train)
        return loss, {"l1": jnp.mean(jnp.abs(frames - target)), "psnr": jnp.mean(psnr(frames, target))}

    def evaluate(self, model: TinyDecoder, batch: dict, frozen: nnx.State) -> dict:
        """The loss against the full decoder, PSNR against it and against the true frames, and the full
        decoder's own PSNR against the true frames (the ceiling of the second)."""
        video = batch["video"]
        latents, target = self._pair(frozen, video)
        frames = model.decode(latents)
        return {
            "loss": reconstruction_error(frames, target, self.cfg.decoder_train),
            "l1": jnp.mean(jnp.abs(frames - target)),
            "psnr": jnp.mean(psnr(frames, target)),
            "psnr_true": jnp.mean(psnr(frames, video)),
            "psnr_full_true": jnp.mean(psnr(target, video)),
        }

    def batch_axes(self) -> dict[str, tuple]:
        return {"video": (axes.BATCH, None, None, None, None)}

    def _cropped(self, example: dict, position: int) -> dict[str, np.ndarray]:
        return {"video": object_crop(example, self.cfg.decoder_train.crop, self.cfg.seed, position)}

    _video = staticmethod(AutoencoderTask._video)

    def train_batches(self, batch_size: int, seed: int, process: int, processes: int) -> grain.IterDataset:
        return pipeline.train_batches(self.train_source, self._cropped, batch_size, seed, process, processes)

    def eval_batches(self, batch_size: int, count: int, process: int, processes: int) -> list[dict]:
        return pipeline.fixed_batches(self.eval_source, self._video, batch_size, count, process, processes)

    def on_save(self, model: TinyDecoder) -> None:
        del model  # nothing but the trained weights


@functools.partial(jax.jit, static_argnums=(0, 2))
def _decode_both(vae_graphdef, vae_state, tiny_graphdef, tiny_state, video):
    latents, full = _latents_and_frames(nnx.merge(vae_graphdef, vae_state), video)
    return full, nnx.merge(tiny_graphdef, tiny_state).decode(latents)


def evaluate_decoder(
    tiny: TinyDecoder, vae: LatentAutoencoder, cfg: Config, clips: int, frames: int | None = None
) -> dict[str, float]:
    """On the first ``clips`` held-out clips train-decoder evaluates on: PSNR of the tiny decoder
    against the full decoder's frames and against the true frames (and the full decoder's), and the
    shapes detector's scores (colour, shape, position) on the true frames, the full decoder's and the
    tiny decoder's, with the tiny decoder's as a share of the full decoder's (``*_ratio``), and how often
    the detector's reading of the tiny decoder's frames agrees with the full decoder's (``*_agreement``).
    ``frames``: clips of that many frames of the same scenes instead."""
    source = DecoderTask.heldout(cfg, frames)
    vae_graphdef, vae_state = nnx.split(vae)
    tiny_graphdef, tiny_state = nnx.split(tiny)
    psnrs: dict[str, list] = {"psnr_tiny_full": [], "psnr_tiny_true": [], "psnr_full_true": []}
    hits: dict[str, dict[str, list]] = {kind: {} for kind in ("true", "full", "tiny", "agreement")}
    for i in range(clips):
        item = source[i]
        video = jnp.asarray(item["video"][None])
        full, frames = _decode_both(vae_graphdef, vae_state, tiny_graphdef, tiny_state, video)
        psnrs["psnr_tiny_full"].append(float(psnr(frames, full)[0]))
        psnrs["psnr_tiny_true"].append(float(psnr(frames, video)[0]))
        psnrs["psnr_full_true"].append(float(psnr(full, video)[0]))
        dets = {
            kind: detect(np.asarray(x[0])) for kind, x in (("true", video), ("full", full), ("tiny", frames))
        }
        scores = {kind: detector_scores(det, item["factors"]) for kind, det in dets.items()}
        scores["agreement"] = detector_agreement(dets["tiny"], dets["full"], item["factors"])
        for kind, values in scores.items():
            for name, hit in values.items():
                hits[kind].setdefault(name, []).append(hit)
    out = {name: float(np.mean(values)) for name, values in psnrs.items()}
    for kind, scores in hits.items():
        for name, values in scores.items():
            values = np.concatenate(values)  # none counted (e.g. no object clear of the border): NaN
            out[f"{name}_{kind}"] = float(values.mean()) if values.size else float("nan")
    for name in hits["full"]:
        out[f"{name}_ratio"] = out[f"{name}_tiny"] / max(out[f"{name}_full"], 1e-9)
    out["clips"] = clips
    return out
