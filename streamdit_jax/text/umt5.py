"""The umT5 encoder (Wan's text encoder; transformers ``UMT5EncoderModel``) in Flax.

T5 with two umT5 traits: every layer has its own relative position bias (T5 shares layer 0's), and
attention logits are not scaled by 1/sqrt(K). Pre-RMSNorm layers (no mean subtraction, no bias), a gated
feed-forward, a final RMSNorm; no projection has a bias.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from streamdit_jax.convert import ConversionError
from streamdit_jax.convert.mapping import Mapping, load_weights, torch_linear
from streamdit_jax.convert.safetensors_io import read_safetensors_folder
from streamdit_jax.model.layers import Linear, RMSNorm, dtype_of
from streamdit_jax.sharding import axes
from streamdit_jax.text.tokenize import PromptTokenizer

ACTIVATIONS = {
    "gelu_new": functools.partial(jax.nn.gelu, approximate=True),
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
}


@dataclasses.dataclass(frozen=True)
class UMT5Config:
    vocab_size: int
    width: int
    num_heads: int
    head_dim: int
    mlp_width: int
    num_layers: int
    num_buckets: int
    max_distance: int
    eps: float
    activation: str
    pad_id: int
    dtype: str = "float32"  # parameters and matmuls; norms, softmax and the residual stream are float32

    @classmethod
    def from_hf(cls, hf: dict[str, Any], dtype: str = "float32") -> UMT5Config:
        """From a transformers UMT5 config.json (the activation follows ``feed_forward_proj`` as there)."""
        proj = hf.get("feed_forward_proj", "gated-gelu")
        gated, activation = proj.startswith("gated-"), proj.split("-")[-1]
        activation = "gelu_new" if proj == "gated-gelu" else activation
        if not gated or activation not in ACTIVATIONS:
            raise ConversionError(
                f"feed_forward_proj={proj!r}: only gated feed-forwards with {sorted(ACTIVATIONS)} work"
            )
        return cls(
            vocab_size=hf["vocab_size"],
            width=hf["d_model"],
            num_heads=hf["num_heads"],
            head_dim=hf["d_kv"],
            mlp_width=hf["d_ff"],
            num_layers=hf["num_layers"],
            num_buckets=hf.get("relative_attention_num_buckets", 32),
            max_distance=hf.get("relative_attention_max_distance", 128),
            eps=hf.get("layer_norm_epsilon", 1e-6),
            activation=activation,
            pad_id=hf.get("pad_token_id", 0),
            dtype=dtype,
        )


@functools.lru_cache(maxsize=16)
def relative_position_buckets(length: int, num_buckets: int, max_distance: int) -> np.ndarray:
    """[2L-1] bucket of each offset key - query from -(L-1) to L-1 (index offset + L - 1).

    T5's bidirectional bucketing: half the buckets for keys after the query; in each half, exact buckets
    for small distances and logarithmic ones up to ``max_distance``. Computed in float32 as transformers
    does.
    """
    offset = np.arange(1 - length, length)
    distance = np.abs(offset)
    half = num_buckets // 2
    exact = half // 2
    ratio = np.maximum(distance, 1).astype(np.float32) / np.float32(exact)
    log_ratio = np.log(ratio) / np.float32(math.log(max_distance / exact)) * np.float32(half - exact)
    large = np.minimum(exact + log_ratio.astype(np.int32), half - 1)
    return ((offset > 0) * half + np.where(distance < exact, distance, large)).astype(np.int32)


class UMT5Attention(nnx.Module):
    def __init__(self, cfg: UMT5Config, *, rngs: nnx.Rngs):
        d, n, k, dtype = cfg.width, cfg.num_heads, cfg.head_dim, dtype_of(cfg.dtype)
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=dtype, use_bias=False)
        self.q, self.k, self.v = (
            Linear(d, (n, k), (axes.EMBED, axes.HEADS, axes.HEAD_DIM), **kw) for _ in range(3)
        )
        self.o = Linear((n, k), d, (axes.HEADS, axes.HEAD_DIM, axes.EMBED), **kw)
        init = nnx.with_partitioning(nnx.initializers.normal(1.0), (None, axes.HEADS))
        self.relative_bias = nnx.Embed(cfg.num_buckets, n, embedding_init=init, param_dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array, buckets: jax.Array) -> jax.Array:
        """x [B, L, D], mask [B, L] bool (keys that may be attended to), buckets [L, L] int."""
        q, k, v = self.q(x), self.k(x), self.v(x)
        logits = jnp.einsum("btnk,bsnk->bnts", q, k, preferred_element_type=jnp.float32)  # no 1/sqrt(K)
        logits = logits + self.relative_bias(buckets).astype(jnp.float32).transpose(2, 0, 1)
        logits = jnp.where(mask[:, None, None, :], logits, jnp.finfo(jnp.float32).min)
        probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
        return self.o(jnp.einsum("bnts,bsnk->btnk", probs, v))


class UMT5Layer(nnx.Module):
    """``x += attention(RMSNorm(x)); x += wo(act(wi_0(h)) * wi_1(h))`` with h = RMSNorm(x)."""

    def __init__(self, cfg: UMT5Config, *, rngs: nnx.Rngs):
        d, m, dtype = cfg.width, cfg.mlp_width, dtype_of(cfg.dtype)
        norm = functools.partial(RMSNorm, (d,), (axes.EMBED,), eps=cfg.eps, rngs=rngs, param_dtype=dtype)
        self.attention_norm = norm()
        self.attention = UMT5Attention(cfg, rngs=rngs)
        self.mlp_norm = norm()
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=dtype, use_bias=False)
        self.wi_0, self.wi_1 = (Linear(d, m, (axes.EMBED, axes.MLP), **kw) for _ in range(2))
        self.wo = Linear(m, d, (axes.MLP, axes.EMBED), **kw)
        self.activation = cfg.activation

    def __call__(self, x: jax.Array, mask: jax.Array, buckets: jax.Array) -> jax.Array:
        """x [B, L, D] float32."""
        x = x + self.attention(self.attention_norm(x), mask, buckets).astype(jnp.float32)
        h = self.mlp_norm(x)
        return x + self.wo(ACTIVATIONS[self.activation](self.wi_0(h)) * self.wi_1(h)).astype(jnp.float32)


class UMT5Encoder(nnx.Module):
    """``encoder(ids [B, L] int, mask [B, L] bool) -> last hidden states [B, L, D] float32`` (0 at pads)."""

    def __init__(self, cfg: UMT5Config, *, rngs: nnx.Rngs):
        with nnx.use_eager_sharding(False):
            self.cfg = cfg
            dtype = dtype_of(cfg.dtype)
            init = nnx.with_partitioning(nnx.initializers.normal(1.0), (None, axes.EMBED))
            self.embed = nnx.Embed(
                cfg.vocab_size, cfg.width, embedding_init=init, param_dtype=dtype, rngs=rngs
            )
            self.layers = nnx.List([UMT5Layer(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
            self.final_norm = RMSNorm((cfg.width,), (axes.EMBED,), eps=cfg.eps, rngs=rngs, param_dtype=dtype)

    def __call__(self, ids: jax.Array, mask: jax.Array) -> jax.Array:
        length = ids.shape[1]
        table = jnp.asarray(relative_position_buckets(length, self.cfg.num_buckets, self.cfg.max_distance))
        positions = jnp.arange(length)
        buckets = table[positions[None, :] - positions[:, None] + length - 1]  # [query, key]
        x = self.embed(ids).astype(jnp.float32)
        for layer in self.layers:
            x = layer(x, mask, buckets)
        return self.final_norm(x) * mask[..., None]


def umt5_mapping(cfg: UMT5Config, embedding: str) -> Mapping:
    """transformers UMT5EncoderModel tensor names -> our parameters (the vocabulary from ``embedding``)."""
    d, n, k, m = cfg.width, cfg.num_heads, cfg.head_dim, cfg.mlp_width
    mapping: Mapping = {
        embedding: (("embed", "embedding"), lambda w: w),
        "encoder.final_layer_norm.weight": (("final_norm", "scale"), lambda w: w),
    }
    for i in range(cfg.num_layers):
        src, dst = f"encoder.block.{i}.layer", ("layers", i)
        for proj in ("q", "k", "v"):
            mapping |= torch_linear(
                f"{src}.0.SelfAttention.{proj}", (*dst, "attention", proj), (d,), (n, k), False
            )
        mapping |= torch_linear(f"{src}.0.SelfAttention.o", (*dst, "attention", "o"), (n, k), (d,), False)
        mapping[f"{src}.0.SelfAttention.relative_attention_bias.weight"] = (
            (*dst, "attention", "relative_bias", "embedding"),
            lambda w: w,
        )
        mapping[f"{src}.0.layer_norm.weight"] = ((*dst, "attention_norm", "scale"), lambda w: w)
        for proj in ("wi_0", "wi_1"):
            mapping |= torch_linear(f"{src}.1.DenseReluDense.{proj}", (*dst, proj), (d,), (m,), False)
        mapping |= torch_linear(f"{src}.1.DenseReluDense.wo", (*dst, "wo"), (m,), (d,), False)
        mapping[f"{src}.1.layer_norm.weight"] = ((*dst, "mlp_norm", "scale"), lambda w: w)
    return mapping


def convert_umt5(tensors: dict[str, np.ndarray], cfg: UMT5Config) -> UMT5Encoder:
    """A UMT5Encoder holding a UMT5EncoderModel state dict (name -> array); ConversionError lists mismatches.

    The vocabulary is ``shared.weight`` or its tied copy ``encoder.embed_tokens.weight`` (either or both).
    """
    alias = "encoder.embed_tokens.weight"
    embedding = "shared.weight" if "shared.weight" in tensors or alias not in tensors else alias
    abstract = nnx.eval_shape(lambda: UMT5Encoder(cfg, rngs=nnx.Rngs(0)))
    return load_weights(abstract, tensors, umt5_mapping(cfg, embedding), {alias})


@functools.partial(jax.jit, static_argnums=0)
def _encode(graphdef: nnx.GraphDef, state: nnx.State, ids: jax.Array, mask: jax.Array) -> jax.Array:
    # Functional (split once): the call leaves the module untouched, so threads may encode at once.
    return nnx.merge(graphdef, state)(ids, mask)


class UMT5:
    """``encoder(prompts) -> (tokens [B, L, D] float32, mask [B, L] bool)`` with L = ``max_length``.

    Tokens are the last hidden states, zero at padding (as Wan's pipeline feeds them). Without a
    tokenizer.json the encoder still runs on token ids (``encode_ids``).
    """

    def __init__(self, model: UMT5Encoder, tokenizer_file: Path, max_length: int):
        self.model = model
        self._graphdef, self._state = nnx.split(model)
        self.tokenizer_file = tokenizer_file
        self.tokenizer = (
            PromptTokenizer(tokenizer_file, max_length, model.cfg.pad_id)
            if tokenizer_file.is_file()
            else None
        )
        self.width = model.cfg.width
        self.max_length = max_length

    @classmethod
    def from_pretrained(cls, folder: str | Path, max_length: int = 512, dtype: str = "float32") -> UMT5:
        """From a transformers UMT5EncoderModel folder or a diffusers pipeline folder.

        The first holds config.json, (sharded) safetensors and tokenizer.json; the second text_encoder/ and
        tokenizer/. ``dtype`` (e.g. "bfloat16") sets the parameter and matmul dtype.
        """
        folder = Path(folder)
        model_dir, tokenizer_file = folder, folder / "tokenizer.json"
        if (folder / "text_encoder" / "config.json").is_file():
            model_dir, tokenizer_file = folder / "text_encoder", folder / "tokenizer" / "tokenizer.json"
        cfg = UMT5Config.from_hf(json.loads((model_dir / "config.json").read_text()), dtype)
        return cls(convert_umt5(read_safetensors_folder(model_dir), cfg), tokenizer_file, max_length)

    def encode_ids(self, ids: jax.Array | np.ndarray, mask: jax.Array | np.ndarray) -> jax.Array:
        """Token states [B, L, D] float32 of ids [B, L] int with mask [B, L] bool (any L)."""
        return _encode(self._graphdef, self._state, jnp.asarray(ids, jnp.int32), jnp.asarray(mask, bool))

    def __call__(self, prompts: list[str]) -> tuple[jax.Array, jax.Array]:
        if self.tokenizer is None:
            raise FileNotFoundError(
                f"{self.tokenizer_file} does not exist: this umT5 encoder can only encode token ids "
                "(encode_ids); put the umT5 tokenizer.json there to encode prompts"
            )
        ids, mask = self.tokenizer(prompts)
        mask = jnp.asarray(mask)
        return self.encode_ids(ids, mask), mask
