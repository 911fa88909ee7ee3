"""Text encoders: MiniLM against transformers' BertModel, umT5 against UMT5EncoderModel, tokenization."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import tokenizers

from streamdit_jax.convert import ConversionError
from streamdit_jax.convert.safetensors_io import read_safetensors_folder
from streamdit_jax.text import UMT5, MiniLM, TextEncoder
from streamdit_jax.text.minilm import Bert, package_folder
from streamdit_jax.text.umt5 import UMT5Config, convert_umt5, relative_position_buckets
from tests.helpers import relative_error

PROMPTS = [
    "A red fox jumps over a sleeping dog in the snow, slow motion.",
    "",
    "cat",
    "Aerial view of a coastline at sunset; waves crash on black rocks while gulls circle overhead.",
]
LONG_PROMPT = " ".join(["a very long prompt about a dog"] * 20)


@pytest.fixture(scope="module")
def minilm() -> MiniLM:
    return MiniLM.from_package(max_length=32)


def test_minilm_matches_transformers_bert(minilm):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    folder = package_folder()
    bert = transformers.BertModel.from_pretrained(folder, dtype=torch.float32).eval()
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(folder)

    tokens, mask = minilm(PROMPTS)
    assert isinstance(minilm, TextEncoder)
    assert tokens.shape == (len(PROMPTS), 32, minilm.width) and tokens.dtype == np.float32
    batch = hf_tokenizer(PROMPTS, padding="max_length", max_length=32, truncation=True, return_tensors="np")
    np.testing.assert_array_equal(mask, batch["attention_mask"].astype(bool))
    np.testing.assert_array_equal(minilm.tokenizer(PROMPTS)[0], batch["input_ids"])
    assert not np.asarray(tokens)[~np.asarray(mask)].any()  # zero at padding

    # Each prompt alone and unpadded: padding in our batch must not change the valid positions.
    for i, prompt in enumerate(PROMPTS):
        with torch.no_grad():
            ref = bert(**hf_tokenizer([prompt], return_tensors="pt")).last_hidden_state[0].numpy()
        ours = np.asarray(tokens[i, : int(mask[i].sum())])
        assert ours.shape == ref.shape
        err = relative_error(ours, ref)
        assert err <= 1e-4, f"prompt {i}: relative error {err:.2e}"


def test_empty_prompt_and_truncation(minilm):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ids, mask = minilm.tokenizer(["", "cat"])
    np.testing.assert_array_equal(ids[0, :3], [101, 102, 0])  # [CLS] [SEP] [PAD]
    np.testing.assert_array_equal(mask.sum(1), [2, 3])

    with pytest.warns(UserWarning, match=r"1 of 2 prompts are longer than 32 tokens.*a very long prompt"):
        tokens, mask = minilm(["cat", LONG_PROMPT])
    assert mask[1].all() and np.isfinite(np.asarray(tokens)).all()
    with pytest.warns(UserWarning):
        ids, _ = minilm.tokenizer([LONG_PROMPT])
    assert ids[0, 0] == 101 and ids[0, -1] == 102  # the special tokens survive the cut
    transformers = pytest.importorskip("transformers")
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(package_folder())
    np.testing.assert_array_equal(
        ids[0], hf_tokenizer(LONG_PROMPT, max_length=32, truncation=True)["input_ids"]
    )
    with pytest.raises(TypeError, match="list of prompts"):
        minilm("a single string")


def test_minilm_compiles_once_per_batch_size(minilm, monkeypatch):
    traces = []
    forward = Bert.__call__
    monkeypatch.setattr(Bert, "__call__", lambda self, *args: traces.append(1) or forward(self, *args))
    animals = ("cat", "dog", "bird", "fish", "horse", "cow", "frog")
    batch = [f"a {animal}" for animal in animals]  # a batch size that no other test uses
    minilm(batch)
    minilm([prompt.upper() + " running" for prompt in batch])
    assert len(traces) == 1
    minilm(batch[:6])  # a new batch size does trace (the counter works)
    assert len(traces) == 2


# ---------------------------------------------------------------------------------------------------
# umT5

UMT5_CONFIG = dict(
    vocab_size=100,
    d_model=32,
    num_layers=2,
    num_heads=4,
    d_kv=8,
    d_ff=64,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=16,
)


@pytest.fixture(scope="module")
def umt5_folder(tmp_path_factory):
    """A small random transformers UMT5EncoderModel saved as safetensors (no tokenizer.json)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = transformers.UMT5EncoderModel(transformers.UMT5Config(**UMT5_CONFIG)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layer_norm" in name:  # norms start at one; make them matter
                param.add_(0.3 * torch.randn_like(param))
    folder = tmp_path_factory.mktemp("umt5")
    model.save_pretrained(folder, safe_serialization=True)
    return folder, model


def test_umt5_matches_transformers(umt5_folder):
    torch = pytest.importorskip("torch")
    folder, reference = umt5_folder
    rng = np.random.default_rng(0)
    lengths = np.array([24, 9, 1])  # 24 > max_distance: the far buckets are used too
    ids = rng.integers(1, UMT5_CONFIG["vocab_size"], (3, 24))
    mask = np.arange(24)[None, :] < lengths[:, None]
    with torch.no_grad():
        ref = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask.astype(np.int64)))
    ref = ref.last_hidden_state.numpy()

    encoder = UMT5.from_pretrained(folder, max_length=24)
    tokens = np.asarray(encoder.encode_ids(ids, mask))
    assert tokens.dtype == np.float32 and tokens.shape == (3, 24, UMT5_CONFIG["d_model"])
    err = relative_error(tokens[mask], ref[mask])
    assert err <= 1e-4, f"relative error {err:.2e}"
    assert not tokens[~mask].any()

    bf16 = UMT5.from_pretrained(folder, max_length=24, dtype="bfloat16")
    assert relative_error(np.asarray(bf16.encode_ids(ids, mask))[mask], ref[mask]) <= 3e-2

    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json"):
        encoder(["a prompt"])


def test_umt5_encodes_prompts_with_a_tokenizer_json(umt5_folder, tmp_path):
    """A T5-style tokenizer ("$A </s>"): the empty prompt is [</s>], and strings reach the same network."""
    folder, _ = umt5_folder
    for file in folder.iterdir():
        shutil.copy(file, tmp_path)
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "a": 3, "cat": 4, "on": 5, "mat": 6}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.post_processor = tokenizers.processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    tokenizer.save(str(tmp_path / "tokenizer.json"))

    encoder = UMT5.from_pretrained(tmp_path, max_length=8)
    assert isinstance(encoder, TextEncoder) and encoder.width == UMT5_CONFIG["d_model"]
    tokens, mask = encoder(["a cat on a mat", ""])
    ids = np.array([[3, 4, 5, 3, 6, 1, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(mask, ids > 0)
    np.testing.assert_allclose(tokens, encoder.encode_ids(ids, ids > 0), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("num_buckets", "max_distance", "length"), [(32, 128, 512), (8, 16, 40)])
def test_relative_position_buckets_match_transformers(num_buckets, max_distance, length):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.models.umt5.modeling_umt5 import UMT5Attention

    config = transformers.UMT5Config(
        **UMT5_CONFIG
        | dict(relative_attention_num_buckets=num_buckets, relative_attention_max_distance=max_distance)
    )
    attention = UMT5Attention(config, has_relative_attention_bias=True)
    positions = torch.arange(length)
    ref = attention._relative_position_bucket(positions[None, :] - positions[:, None]).numpy()
    table = relative_position_buckets(length, num_buckets, max_distance)
    ours = table[np.arange(length)[None, :] - np.arange(length)[:, None] + length - 1]
    np.testing.assert_array_equal(ours, ref)
    assert len(np.unique(ours)) == num_buckets - 1  # all reached but "after, distance 0"


def test_umt5_converter_lists_unknown_and_missing_tensors(umt5_folder):
    folder, _ = umt5_folder
    cfg = UMT5Config.from_hf(UMT5_CONFIG)
    tensors = dict(read_safetensors_folder(folder))
    # The vocabulary may come as the tied copy encoder.embed_tokens.weight only.
    tensors["encoder.embed_tokens.weight"] = tensors.pop("shared.weight")
    model = convert_umt5(tensors, cfg)
    np.testing.assert_array_equal(model.embed.embedding[...], tensors["encoder.embed_tokens.weight"])

    tensors["encoder.block.0.layer.0.SelfAttention.extra.weight"] = np.zeros(3, np.float32)
    del tensors["encoder.block.1.layer.1.DenseReluDense.wo.weight"]
    with pytest.raises(ConversionError) as error:
        convert_umt5(tensors, cfg)
    assert "unknown tensors (1): ['encoder.block.0.layer.0.SelfAttention.extra.weight']" in str(error.value)
    assert "missing tensors (1): ['encoder.block.1.layer.1.DenseReluDense.wo.weight']" in str(error.value)
