"""BART-like pre-LN encoder-decoder with tied embeddings and logical axis names.

Every parameter carries logical axis names (`nn.with_logical_partitioning`) so the
same module shards over any ('data', 'fsdp', 'tensor') mesh through the config's
`logical_axis_rules`. Kernels stay 2-D (q/k/v project to heads*head_dim and are
reshaped), which keeps logical partitioning working in flax 0.12.

Token 0 is padding. The decoder reads BOS + target[:-1] and predicts target.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from onesearch_jax.model.presets import TransformerConfig

PAD_ID = 0
ACT_AXES = ("batch", "length", "embed")  # logical names of the residual stream


def _init(init, *names):
    return nn.with_logical_partitioning(init, names)


def _dense(
    features: int, names: tuple[str, str], cfg: TransformerConfig, name: str, use_bias: bool = True
) -> nn.Dense:
    return nn.Dense(
        features,
        use_bias=use_bias,
        dtype=jnp.dtype(cfg.dtype),
        param_dtype=jnp.dtype(cfg.param_dtype),
        name=name,
        kernel_init=_init(nn.initializers.xavier_uniform(), *names),
        bias_init=_init(nn.initializers.zeros_init(), names[1]),
    )


def _layer_norm(cfg: TransformerConfig, name: str) -> nn.LayerNorm:
    return nn.LayerNorm(
        dtype=jnp.dtype(cfg.dtype),
        param_dtype=jnp.dtype(cfg.param_dtype),
        name=name,
        scale_init=_init(nn.initializers.ones_init(), "embed"),
        bias_init=_init(nn.initializers.zeros_init(), "embed"),
    )


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
    """The fixed sin/cos table of 'Attention is all you need', float32[length, dim]."""
    pos = np.arange(length)[:, None]
    inv = np.exp(-np.log(10000.0) * np.arange(0, dim, 2) / dim)
    table = np.zeros((length, dim), np.float32)
    table[:, 0::2] = np.sin(pos * inv)
    table[:, 1::2] = np.cos(pos * inv)[:, : dim // 2]
    return table


class Attention(nn.Module):
    """Multi-head attention through jax.nn.dot_product_attention."""

    cfg: TransformerConfig

    @nn.compact
    def __call__(self, x, kv, mask=None, is_causal=False):
        cfg = self.cfg
        b, t, _ = x.shape
        s = kv.shape[1]
        h = cfg.num_heads
        hd = cfg.attn_dim // h
        q = _dense(cfg.attn_dim, ("embed", "heads"), cfg, "query")(x).reshape(b, t, h, hd)
        # No key bias: it shifts every score of a query equally, so softmax ignores it and
        # its gradient is pure rounding noise (which Adam would amplify to full-size steps).
        k = _dense(cfg.attn_dim, ("embed", "heads"), cfg, "key", use_bias=False)(kv).reshape(
            b, s, h, hd
        )
        v = _dense(cfg.attn_dim, ("embed", "heads"), cfg, "value")(kv).reshape(b, s, h, hd)
        out = jax.nn.dot_product_attention(
            q, k, v, mask=mask, is_causal=is_causal, implementation=cfg.attention_impl
        )
        return _dense(cfg.d_model, ("heads", "embed"), cfg, "out")(out.reshape(b, t, cfg.attn_dim))


class Mlp(nn.Module):
    cfg: TransformerConfig

    @nn.compact
    def __call__(self, x, train: bool):
        cfg = self.cfg
        y = nn.gelu(_dense(cfg.mlp_dim, ("embed", "mlp"), cfg, "wi")(x))
        y = nn.Dropout(cfg.dropout_rate)(y, deterministic=not train)
        return _dense(cfg.d_model, ("mlp", "embed"), cfg, "wo")(y)


class EncoderLayer(nn.Module):
    cfg: TransformerConfig

    @nn.compact
    def __call__(self, x, key_mask, train: bool):
        drop = nn.Dropout(self.cfg.dropout_rate)
        y = _layer_norm(self.cfg, "ln_attn")(x)
        x = x + drop(
            Attention(self.cfg, name="self_attn")(y, y, mask=key_mask), deterministic=not train
        )
        y = _layer_norm(self.cfg, "ln_mlp")(x)
        x = x + drop(Mlp(self.cfg, name="mlp")(y, train), deterministic=not train)
        return nn.with_logical_constraint(x, ACT_AXES)


class DecoderLayer(nn.Module):
    cfg: TransformerConfig

    @nn.compact
    def __call__(self, x, enc_out, cross_mask, train: bool):
        drop = nn.Dropout(self.cfg.dropout_rate)
        y = _layer_norm(self.cfg, "ln_self")(x)
        x = x + drop(
            Attention(self.cfg, name="self_attn")(y, y, is_causal=True), deterministic=not train
        )
        y = _layer_norm(self.cfg, "ln_cross")(x)
        x = x + drop(
            Attention(self.cfg, name="cross_attn")(y, enc_out, mask=cross_mask),
            deterministic=not train,
        )
        y = _layer_norm(self.cfg, "ln_mlp")(x)
        x = x + drop(Mlp(self.cfg, name="mlp")(y, train), deterministic=not train)
        return nn.with_logical_constraint(x, ACT_AXES)


class EncoderDecoder(nn.Module):
    """The OneSearch seq2seq model: query tokens in, SID-token logits out."""

    cfg: TransformerConfig

    def setup(self):
        cfg = self.cfg
        self.embed = nn.Embed(
            cfg.vocab_size,
            cfg.d_model,
            dtype=jnp.dtype(cfg.dtype),
            param_dtype=jnp.dtype(cfg.param_dtype),
            embedding_init=_init(nn.initializers.normal(stddev=1.0), "vocab", "embed"),
        )
        if cfg.positions == "learned":
            pos_init = _init(nn.initializers.normal(stddev=0.02), "length", "embed")
            self.enc_pos = self.param(
                "enc_pos", pos_init, (cfg.max_enc_len, cfg.d_model), jnp.dtype(cfg.param_dtype)
            )
            self.dec_pos = self.param(
                "dec_pos", pos_init, (cfg.max_dec_len, cfg.d_model), jnp.dtype(cfg.param_dtype)
            )
        self.enc_layers = [EncoderLayer(cfg, name=f"enc_{i}") for i in range(cfg.enc_layers)]
        self.dec_layers = [DecoderLayer(cfg, name=f"dec_{i}") for i in range(cfg.dec_layers)]
        self.enc_norm = _layer_norm(cfg, "enc_norm")
        self.dec_norm = _layer_norm(cfg, "dec_norm")
        self.dropout = nn.Dropout(cfg.dropout_rate)

    def _positions(self, which: str, length: int):
        cfg = self.cfg
        limit = cfg.max_enc_len if which == "enc" else cfg.max_dec_len
        if length > limit:
            raise ValueError(f"{which} length {length} exceeds model.max_{which}_len={limit}")
        if cfg.positions == "sinusoidal":
            return jnp.asarray(sinusoidal_positions(length, cfg.d_model))
        return (self.enc_pos if which == "enc" else self.dec_pos)[:length]

    def _embed(self, tokens, which: str, train: bool):
        x = self.embed(tokens) + self._positions(which, tokens.shape[1]).astype(
            jnp.dtype(self.cfg.dtype)
        )
        x = self.dropout(x.astype(jnp.dtype(self.cfg.dtype)), deterministic=not train)
        return nn.with_logical_constraint(x, ACT_AXES)

    def encode(self, enc_tokens, train: bool = False):
        """Returns (enc_out [B,S,D], enc_mask bool[B,S]); mask is False on padding."""
        if enc_tokens.ndim != 2:
            raise ValueError(f"enc_tokens must be [batch, length], got shape {enc_tokens.shape}")
        enc_mask = enc_tokens != PAD_ID
        key_mask = enc_mask[:, None, None, :]
        x = self._embed(enc_tokens, "enc", train)
        for layer in self.enc_layers:
            x = layer(x, key_mask, train)
        return self.enc_norm(x), enc_mask

    def decode(self, enc_out, enc_mask, dec_tokens, train: bool = False):
        """Causal decoder over the whole prefix; returns float32 logits [B,T,V]."""
        if dec_tokens.ndim != 2:
            raise ValueError(f"dec_tokens must be [batch, length], got shape {dec_tokens.shape}")
        cross_mask = enc_mask[:, None, None, :]
        x = self._embed(dec_tokens, "dec", train)
        for layer in self.dec_layers:
            x = layer(x, enc_out, cross_mask, train)
        x = self.dec_norm(x)
        # Tied output projection, scaled like T5 so N(0,1) embeddings give unit-scale logits.
        logits = self.embed.attend(x) / jnp.sqrt(jnp.asarray(self.cfg.d_model, x.dtype))
        return logits.astype(jnp.float32)

    def __call__(self, enc_tokens, dec_inputs, train: bool = False):
        enc_out, enc_mask = self.encode(enc_tokens, train)
        return self.decode(enc_out, enc_mask, dec_inputs, train)


def build_model(cfg: TransformerConfig) -> EncoderDecoder:
    """The model for a config (dict-like configs are accepted too)."""
    if not isinstance(cfg, TransformerConfig):
        cfg = TransformerConfig.from_dict(cfg)
    return EncoderDecoder(cfg)


DecodeState = tuple  # (enc_out [N,S,D], enc_mask bool[N,S])


def encode_for_beams(model: EncoderDecoder, params, enc_tokens, num_beams: int) -> DecodeState:
    """Encodes once and repeats per beam: row i*num_beams + j is beam j of example i."""
    enc_out, enc_mask = model.apply({"params": params}, enc_tokens, method=EncoderDecoder.encode)
    return (jnp.repeat(enc_out, num_beams, axis=0), jnp.repeat(enc_mask, num_beams, axis=0))


def make_logits_fn(model: EncoderDecoder, params) -> Callable:
    """Next-token logits for beam search / sampling.

    `logits_fn(state, tokens, step) -> (float32[N, V], state)` where tokens are
    int32[N, L >= step+1] (BOS + SID tokens so far, anything after `step` ignored
    thanks to the causal mask) and the logits are those at position `step`.
    `step` may be a traced integer. No KV cache: SIDs are 5 tokens.
    """

    def logits_fn(state: DecodeState, tokens, step):
        enc_out, enc_mask = state
        logits = model.apply(
            {"params": params}, enc_out, enc_mask, tokens, method=EncoderDecoder.decode
        )
        last = jax.lax.dynamic_index_in_dim(logits, step, axis=1, keepdims=False)
        return last.astype(jnp.float32), state

    return logits_fn
