"""``streamdit bench peer``: the same transformer in PyTorch, timed in the same run on the same device.

The peer is diffusers' ``WanTransformer3DModel`` with this preset's sizes (``convert.wan_hf_config``) and
per-token timesteps (each token at its frame's sigma, as StreamDiT's buffer asks). Wan attends over
the whole latent, so the JAX side runs ``model.window = None`` here: the two compute the same function
(``tests/test_wan_parity.py``). Two phases, each a ratio of medians: a forward pass of one buffer (what
a distilled stream step runs), and a training step (forward, backward, AdamW) of ``train.batch_size``
buffers against a fixed target. On GPUs the peer runs ``torch.compile`` and PyTorch's SDPA (flash
attention for bf16). torch and diffusers are imported by this module only, when the command runs
(``pip install '.[peer]'``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from streamdit_jax.bench.common import device_info, perturbed, time_calls
from streamdit_jax.bench.flops import forward_flops
from streamdit_jax.config import Config, ConfigError
from streamdit_jax.convert import wan_hf_config
from streamdit_jax.model import apply, count_params, init_params

LEARNING_RATE = 1e-5


def _inputs(cfg: Config, batch: int) -> dict[str, np.ndarray]:
    """Latents [B, F, h, w, C], steady-state-like sigma [B, F], text states [B, L, Dt], a target."""
    rng = np.random.default_rng(0)
    frames, shape = cfg.latent_grid[0], (batch, *cfg.latent_grid, cfg.model.latent_channels)
    return {
        "latents": rng.standard_normal(shape, np.float32),
        "sigma": np.broadcast_to(
            (np.arange(frames, dtype=np.float32) + 0.5) / frames, (batch, frames)
        ).copy(),
        "text": 0.5 * rng.standard_normal((batch, cfg.text.max_length, cfg.model.text_width), np.float32),
        "target": rng.standard_normal(shape, np.float32),
    }


class JaxSide:
    """The preset's StreamDiT, jitted: a forward pass, and an MSE training step with AdamW (donated)."""

    def __init__(self, cfg: Config):
        self.graphdef, params = init_params(cfg.model, jax.random.key(0))
        self.params = perturbed(params)
        self.tx = optax.adamw(LEARNING_RATE)

    def forward(self, x: dict, steps: int, warmup: int) -> dict:
        latents, sigma, text = (jnp.asarray(x[k]) for k in ("latents", "sigma", "text"))
        mask = jnp.ones(text.shape[:2], bool)
        fn = jax.jit(lambda p, *a: apply(self.graphdef, p, *a))
        run = lambda: fn(self.params, latents, sigma, text, mask)
        step, first = time_calls(run, jax.block_until_ready, steps, warmup)
        return {"step_ms": step, "first_call_s": first, "params": count_params(self.params)}

    def train(self, x: dict, steps: int, warmup: int) -> dict:
        latents, sigma, text, target = (jnp.asarray(x[k]) for k in ("latents", "sigma", "text", "target"))
        mask = jnp.ones(text.shape[:2], bool)

        def step_fn(params, opt_state):
            def loss_fn(p):
                out = apply(self.graphdef, p, latents, sigma, text, mask)
                return jnp.mean(jnp.square(out.astype(jnp.float32) - target))

            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = self.tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        fn = jax.jit(step_fn, donate_argnums=(0, 1))
        state = [jax.tree.map(jnp.copy, self.params), self.tx.init(self.params)]

        def run():
            state[0], state[1], loss = fn(*state)
            return loss

        step, first = time_calls(run, jax.block_until_ready, steps, warmup)
        return {"step_ms": step, "first_call_s": first}


class TorchSide:
    """diffusers' Wan transformer of the same sizes, with per-token timesteps."""

    def __init__(self, cfg: Config, compile_model: bool | None):
        try:
            import diffusers
            import torch
        except ImportError as e:
            raise ConfigError(
                f"bench peer needs PyTorch and diffusers ({e.name} is missing). Fix: pip install '.[peer]'"
            ) from None
        self.torch = torch
        self.cuda = jax.devices()[0].platform == "gpu" and torch.cuda.is_available()
        self.device = torch.device("cuda" if self.cuda else "cpu")
        dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16}
        if cfg.model.dtype not in dtypes:
            raise ConfigError(f"bench peer runs model.dtype float32 or bfloat16, not {cfg.model.dtype!r}")
        self.dtype = dtypes[cfg.model.dtype]
        torch.manual_seed(0)
        self.model = diffusers.WanTransformer3DModel(**wan_hf_config(cfg.model)).to(self.device, self.dtype)
        self.compiled = self.cuda if compile_model is None else compile_model
        self.run = torch.compile(self.model) if self.compiled else self.model
        self.tokens_per_frame = int(np.prod(cfg.token_grid[1:]))
        self.info = {
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "device": str(self.device),
            "compiled": bool(self.compiled),
            "attention": "torch SDPA",
            "params": sum(p.numel() for p in self.model.parameters()),
        }

    def _sync(self, _) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def _tensors(self, x: dict):
        t, dev = self.torch, self.device
        hidden = t.from_numpy(x["latents"]).permute(0, 4, 1, 2, 3).to(dev, self.dtype)  # [B, C, F, h, w]
        timestep = t.from_numpy(np.repeat(1000.0 * x["sigma"], self.tokens_per_frame, axis=1)).to(dev)
        target = t.from_numpy(x["target"]).permute(0, 4, 1, 2, 3).to(dev, self.dtype)
        return hidden, timestep, t.from_numpy(x["text"]).to(dev, self.dtype), target

    def forward(self, x: dict, steps: int, warmup: int) -> dict:
        hidden, timestep, context, _ = self._tensors(x)
        self.model.eval()

        def run():
            with self.torch.inference_mode():
                return self.run(hidden, timestep, context, return_dict=False)[0]

        step, first = time_calls(run, self._sync, steps, warmup)
        return {"step_ms": step, "first_call_s": first}

    def train(self, x: dict, steps: int, warmup: int) -> dict:
        hidden, timestep, context, target = self._tensors(x)
        self.model.train()
        optimizer = self.torch.optim.AdamW(self.model.parameters(), lr=LEARNING_RATE)

        def run():
            optimizer.zero_grad(set_to_none=True)
            out = self.run(hidden, timestep, context, return_dict=False)[0]
            loss = (out.float() - target.float()).square().mean()
            loss.backward()
            optimizer.step()
            return loss

        step, first = time_calls(run, self._sync, steps, warmup)
        return {"step_ms": step, "first_call_s": first}


PHASES = ("forward", "train")


def bench_peer(
    cfg: Config,
    steps: int = 10,
    warmup: int = 2,
    compile_model: bool | None = None,
    phases: tuple[str, ...] = PHASES,
) -> dict:
    """Forward passes (batch 1) and training steps (``train.batch_size``) of the preset's transformer,
    in JAX and in PyTorch at the same token count, each as a ratio of medians."""
    if steps < 1 or warmup < 1:
        raise ConfigError(f"--steps {steps} --warmup {warmup}: both must be >= 1 (the first call compiles)")
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise ConfigError(f"unknown peer phases {sorted(unknown)}. Fix: choose among {PHASES}")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, window=None))
    jax_side, torch_side = JaxSide(cfg), TorchSide(cfg, compile_model)
    results = {}
    for phase in phases:
        batch = 1 if phase == "forward" else cfg.train.batch_size
        x = _inputs(cfg, batch)
        ours = getattr(jax_side, phase)(x, steps, warmup)
        theirs = getattr(torch_side, phase)(x, steps, warmup)
        forward = forward_flops(cfg.model, cfg.latent_grid, cfg.text.max_length, batch)
        results[phase] = {
            "batch": batch,
            "tokens": batch * int(np.prod(cfg.token_grid)),
            "flops": forward if phase == "forward" else 3 * forward,
            "jax": ours,
            "torch": theirs,
            "jax_over_torch": ours["step_ms"]["median"] / theirs["step_ms"]["median"],
        }
    return {
        "bench": "peer",
        **device_info(),
        "resolution": list(cfg.data.resolution),
        "latent_grid": list(cfg.latent_grid),
        "dtype": cfg.model.dtype,
        "params": {"jax": count_params(jax_side.params), "torch": torch_side.info.pop("params")},
        "torch_side": torch_side.info,
        "phases": results,
        "warmup": warmup,
        "steps": steps,
    }
