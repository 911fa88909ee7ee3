"""StreamModel: what a stream restores from a checkpoint (config, transformer on a mesh, autoencoder, text
encoder).

Shared by the CLI's ``stream`` and ``eval``, the studio server and the benchmarks. Restoring for
inference reads the run config, the transformer's parameters, the autoencoder checkpoint named by
``data.vae`` and, with ``decoder="tiny"``, the tiny decoder distilled from it; it builds no training
object (no task, optimizer or dataset).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import jax
from flax import nnx
from jax.sharding import Mesh

from streamdit_jax import checkpoint as ckpt
from streamdit_jax.autoencoder import Autoencoder, restore_data_vae
from streamdit_jax.autoencoder.tiny import TinyDecoder, restore_tiny_decoder
from streamdit_jax.choices import DECODERS
from streamdit_jax.config import Config, ConfigError, MeshConfig
from streamdit_jax.flow import Scheme
from streamdit_jax.model import restore_params
from streamdit_jax.sharding import make_mesh
from streamdit_jax.storage import workpath
from streamdit_jax.stream.rollout import Rollout
from streamdit_jax.text import TextEncoder


def check_decoder(decoder: str, tiny_decoder: str | Path | None) -> None:
    """A ConfigError unless ``decoder`` is "full" (the VAE's decoder) or "tiny" with a checkpoint."""
    if decoder not in DECODERS:
        raise ConfigError(f"decoder {decoder!r} is not one of {DECODERS}. Fix: --decoder full or tiny")
    if decoder == "tiny" and not tiny_decoder:
        raise ConfigError(
            "--decoder tiny needs the tiny decoder's checkpoint. Fix: pass --tiny-decoder DIR (made by "
            "`streamdit train-decoder --vae VAE_DIR`)"
        )
    if decoder == "full" and tiny_decoder:
        raise ConfigError(f"--tiny-decoder {tiny_decoder} came with the full decoder. Fix: --decoder tiny")


def stream_autoencoder(cfg: Config) -> Autoencoder:
    """The autoencoder checkpoint of ``data.vae``, checked against the preset's autoencoder; a stream
    needs one."""
    autoencoder = restore_data_vae(cfg)
    if autoencoder is None:
        raise ConfigError(
            "config field 'data.vae' is empty: a stream decodes with the autoencoder its model's latents "
            "came from. Fix: pass --vae DIR (the `streamdit train-vae` checkpoint)"
        )
    return autoencoder


@dataclasses.dataclass
class StreamModel:
    """Everything a stream needs: the run's config, the transformer on its mesh, the autoencoder, the text
    encoder and, when frames are made by it, the tiny decoder (``tiny_decoder``; None: the autoencoder's
    own decoder).

    Its compiled rollouts are shared by every Streamer of the model (one compilation per scheme)."""

    cfg: Config
    graphdef: nnx.GraphDef
    params: nnx.State
    autoencoder: Autoencoder
    text_encoder: TextEncoder
    mesh: Mesh
    tiny_decoder: TinyDecoder | None = None
    tiny_decoder_path: str = ""
    _rollouts: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def decoder(self) -> str:
        """Which decoder makes the frames: "full" or "tiny"."""
        return "full" if self.tiny_decoder is None else "tiny"

    def decoder_record(self) -> dict[str, str]:
        """What made the frames, for reports: the decoder, the VAE and the tiny decoder's checkpoint."""
        return {"decoder": self.decoder, "vae": self.cfg.data.vae, "tiny_decoder": self.tiny_decoder_path}

    def streaming_decoder(self):
        """A fresh streaming decoder of the decoder that makes the frames (``step(latents) -> frames``)."""
        source = self.autoencoder if self.tiny_decoder is None else self.tiny_decoder
        return source.streaming_decoder()

    def rollout(self, scheme: Scheme, startup_micro_steps: int | None = None) -> Rollout:
        """The jitted rollout of ``scheme`` (with that start-up), shared by every Streamer of this model
        (compiled once)."""
        key = (scheme, startup_micro_steps or scheme.micro_steps)
        if key not in self._rollouts:
            self._rollouts[key] = Rollout(self.graphdef, scheme, self.mesh, self.cfg.mesh.rules, key[1])
        return self._rollouts[key]

    @staticmethod
    def load_config(checkpoint: str | Path, config: Config | None = None, step: int | None = None) -> Config:
        """The config to stream a checkpoint with: ``config``, else the run config saved with it; checked
        against the checkpoint's transformer. Reads only JSON: cheap, and nothing is compiled."""
        step = ckpt.latest_step(checkpoint) if step is None else step
        config = config or ckpt.restore_run_config(checkpoint, step)
        if config is None:
            raise ConfigError(
                f"{checkpoint} holds no run config (it was not written by `streamdit train`). Fix: pass "
                "the preset it belongs to, e.g. --config small"
            )
        saved = ckpt.restore_config(checkpoint, step)
        if not isinstance(saved, type(config.model)):
            raise ConfigError(f"{checkpoint} holds a {type(saved).__name__} checkpoint, not a transformer's")
        if dataclasses.replace(saved, **ckpt.shape_free(config.model)) != config.model:
            raise ConfigError(
                f"config field 'model': the transformer in {checkpoint} is {saved}, the config asks for "
                f"{config.model}. Fix: use the preset the checkpoint was trained with"
            )
        return config

    @classmethod
    def restore(
        cls,
        checkpoint: str | Path,
        config: Config | None = None,
        vae: str | Path | None = None,
        mesh_shape: Sequence[int] = (1, 1, 1, 1),
        ema: bool = True,
        step: int | None = None,
        decoder: str = "full",
        tiny_decoder: str | Path | None = None,
    ) -> StreamModel:
        """A training or distillation checkpoint's weights (EMA by default) on a mesh of the first
        ``prod(mesh_shape)`` devices, whatever mesh trained it. ``config`` defaults to the run config
        saved with the checkpoint (needed for checkpoints without one, e.g. ``convert``'s); ``vae``
        defaults to that config's ``data.vae``. ``decoder="tiny"`` makes frames with the tiny decoder
        of ``tiny_decoder``, which must have been distilled from that VAE (checked before the
        transformer is restored)."""
        from streamdit_jax.text import build_encoder

        check_decoder(decoder, tiny_decoder)
        step = ckpt.latest_step(checkpoint) if step is None else step
        config = cls.load_config(checkpoint, config, step)
        if vae is not None:
            config = dataclasses.replace(config, data=dataclasses.replace(config.data, vae=str(vae)))
        size = math.prod(mesh_shape)
        if len(mesh_shape) != 4 or mesh_shape[0] * mesh_shape[1] != 1:
            raise ConfigError(
                f"mesh {tuple(mesh_shape)}: a stream is one video (batch 1), so the data and fsdp axes must "
                "be 1. Fix: put devices on the context and model axes, e.g. --mesh 1,1,2,4"
            )
        if size > jax.device_count():
            raise ConfigError(
                f"mesh {tuple(mesh_shape)} needs {size} devices, {jax.device_count()} are present. Fix: "
                "choose a smaller --mesh"
            )
        autoencoder = stream_autoencoder(config)
        tiny = None if decoder == "full" else restore_tiny_decoder(tiny_decoder, autoencoder, config.data.vae)
        mesh = make_mesh(MeshConfig(shape=tuple(mesh_shape), rules=config.mesh.rules), jax.devices()[:size])
        _, graphdef, params = restore_params(
            checkpoint, mesh, config.mesh.rules, step, model_overrides=ckpt.shape_free(config.model), ema=ema
        )
        text_encoder = build_encoder(config.text)
        path = str(workpath(tiny_decoder)) if tiny else ""
        return cls(config, graphdef, params, autoencoder, text_encoder, mesh, tiny, path)
