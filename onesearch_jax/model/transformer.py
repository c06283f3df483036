"""BART-like pre-LN encoder-decoder with tied embeddings and logical axis names.

Every parameter carries logical axis names (`nn.with_logical_partitioning`) so the
same module shards over any ('data', 'fsdp', 'tensor') mesh through the config's
`logical_axis_rules`. Kernels stay 2-D (q/k/v project to heads*head_dim and are
reshaped), which keeps logical partitioning working in flax 0.12.

Token 0 is padding. The decoder reads BOS + target[:-1] and predicts target. Serving decodes
incrementally (`decode_step` with a KV cache, `make_cached_logits_fn`); `make_logits_fn` is the
full-prefix reference it is tested against.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, NamedTuple

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from onesearch_jax.model.presets import FROZEN_STATE_DIM, MINILM_L6, TransformerConfig
from onesearch_jax.model.minilm import MiniLMEncoder

PAD_ID = 0
ACT_AXES = ("batch", "length", "embed")  # logical names of the residual stream


def _init(init, *names):
    return nn.with_logical_partitioning(init, names)


def _dense(
    features: int,
    names: tuple[str, str],
    cfg: TransformerConfig,
    name: str | None = None,
    use_bias: bool = True,
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


def _layer_norm(cfg: TransformerConfig, name: str | None = None) -> nn.LayerNorm:
    return nn.LayerNorm(
        dtype=jnp.dtype(cfg.dtype),
        param_dtype=jnp.dtype(cfg.param_dtype),
        name=name,
        scale_init=_init(nn.initializers.ones_init(), "embed"),
        bias_init=_init(nn.initializers.zeros_init(), "embed"),
    )


def _params(module: nn.Module) -> dict:
    """A bound submodule's own parameters, unboxed (read outside its __call__)."""
    return nn.meta.unbox(module.variables["params"])


def decoding_norm(ln: nn.LayerNorm, x):
    """`ln(x)` in a decoding step. On a GPU the variance is the mean squared deviation (two
    passes): XLA's GPU compiler fuses that whole layer norm into one kernel, while flax's
    one-pass E[x^2] - E[x]^2 takes two (the reductions, then the normalisation): 63 kernels
    fewer in a 1x16 search (docs/scaling.md). Elsewhere flax's own, so CPU results stay bit for
    bit; training keeps flax's everywhere (its backward compiles to more kernels two-pass)."""
    if not targets_gpu():
        return ln(x)
    params = _params(ln)
    xf = x.astype(jnp.float32)
    centred = xf - jnp.mean(xf, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(centred), axis=-1, keepdims=True)
    y = centred * jax.lax.rsqrt(var + ln.epsilon) * params["scale"] + params["bias"]
    return y.astype(ln.dtype or x.dtype)


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
    """The fixed sin/cos table of 'Attention is all you need', float32[length, dim]."""
    pos = np.arange(length)[:, None]
    inv = np.exp(-np.log(10000.0) * np.arange(0, dim, 2) / dim)
    table = np.zeros((length, dim), np.float32)
    table[:, 0::2] = np.sin(pos * inv)
    table[:, 1::2] = np.cos(pos * inv)[:, : dim // 2]
    return table


def resolve_attention(impl: str | None, dtype, head_dim: int, platform: str | None = None,
                      lengths: tuple[int, int] = (2, 2)) -> str:
    """'xla' or 'cudnn' for an attention call. 'auto' (or None) takes cuDNN's fused flash
    attention where it runs (a GPU, bf16/f16, head_dim a multiple of 8 up to 128, even query
    and key lengths: jax refuses odd ones in training): it never writes the [B, H, T, S]
    scores, the largest activations of a GPU training step (docs/scaling.md). `platform`: the
    target's (default: JAX's default backend); `lengths`: (T, S) of the call."""
    if impl not in (None, "auto"):
        return impl
    if platform is None:
        platform = current_platform()
        if (platform == "gpu" and _TARGET_PLATFORM.get() is None
                and not _cudnn_flash_device(jax.devices()[0])):
            platform = "gpu without cuDNN flash attention"
    ok = (platform in GPU_PLATFORMS and jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16)
          and head_dim % 8 == 0 and head_dim <= 128 and not any(n % 2 for n in lengths))
    return "cudnn" if ok else "xla"


_TARGET_PLATFORM: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "target_platform", default=None)


def current_platform() -> str:
    """The platform a trace compiles for: `target_platform`'s inside one (an ahead-of-time
    compile), else JAX's default backend."""
    return _TARGET_PLATFORM.get() or jax.default_backend()


GPU_PLATFORMS = ("gpu", "cuda")


def targets_gpu() -> bool:
    """Whether the trace compiles for a GPU (`current_platform`)."""
    return current_platform() in GPU_PLATFORMS


@contextlib.contextmanager
def target_platform(platform: str):
    """Traces inside resolve 'auto' choices (attention, the gradient norm's layout) for
    `platform` instead of JAX's default backend: an ahead-of-time compile for devices this
    machine does not have (train/aot.py)."""
    token = _TARGET_PLATFORM.set(platform)
    try:
        yield
    finally:
        _TARGET_PLATFORM.reset(token)


def _cudnn_flash_device(device) -> bool:
    """An NVIDIA GPU of compute capability 8.0 or newer (Ampere on), where cuDNN's flash
    attention runs; an AMD GPU's capability ('gfx90a') is no number."""
    try:
        return float(getattr(device, "compute_capability", "0")) >= 8.0
    except ValueError:
        return False


def key_lengths(mask) -> jax.Array:
    """A key-padding mask bool[B, 1, 1, S] as key lengths int32[B] (cuDNN takes no broadcast
    masks): the same attention when the padding trails the keys, as every row builder here
    writes it (`text_tokenizer.compact`; the stages' batch check refuses other rows)."""
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[2] != 1:
        raise ValueError(f"cuDNN attention takes a key-padding mask [B, 1, 1, S], got shape "
                         f"{mask.shape}; set model.attention_impl='xla'")
    return jnp.sum(mask[:, 0, 0, :], axis=-1, dtype=jnp.int32)


def attention(q, k, v, mask=None, is_causal: bool = False, implementation: str = "xla"):
    """jax.nn.dot_product_attention, the key-padding mask given to cuDNN as lengths."""
    if implementation == "cudnn" and mask is not None:
        return jax.nn.dot_product_attention(q, k, v, key_value_seq_lengths=key_lengths(mask),
                                            is_causal=is_causal, implementation="cudnn")
    return jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=is_causal,
                                        implementation=implementation)


class FoldedKV(NamedTuple):
    """Cross-attention keys and values with the query and output projections folded in
    (`Attention.fold_kv`), per query."""

    keys: jax.Array  # [B, H, S, D], scaled by 1/sqrt(head_dim)
    key_bias: jax.Array  # float32 [B, H, S]: the query bias's share of each score
    values: jax.Array  # [B, H, S, D]: each head's values through its rows of the output kernel
    out_bias: jax.Array  # [D]


# Fold the cross-attention (`Attention.fold_kv`) when a batch's folded keys and values, all
# layers, stay under this many bytes: the fold saves every decoding row its query and output
# projections (three kernels per layer and step on a GPU) but keeps H times the bytes per
# query, so it pays while that cache stays in a CPU's caches (1x16 20% faster on this 2-core
# CPU, 64x16 11% slower, docs/scaling.md) and, on a GPU, up to about its L2's size.
FOLD_BUDGET_GPU, FOLD_BUDGET_OTHER = 64 << 20, 4 << 20


def fold_cross_attention(fold: bool | None, queries: int, cfg: TransformerConfig,
                         enc_len: int, platform: str | None = None) -> bool:
    """`fold` if given, else whether `queries` queries' folded cross caches fit the platform's
    budget (FOLD_BUDGET_GPU on a GPU, else FOLD_BUDGET_OTHER; `platform`: default the trace's)."""
    if fold is not None:
        return bool(fold)
    per_query = (cfg.dec_layers * 2 * cfg.num_heads * enc_len * cfg.d_model
                 * jnp.dtype(cfg.dtype).itemsize)
    gpu = (platform or current_platform()) in GPU_PLATFORMS
    return queries * per_query <= (FOLD_BUDGET_GPU if gpu else FOLD_BUDGET_OTHER)


class Attention(nn.Module):
    """Multi-head attention through jax.nn.dot_product_attention.

    Split into projections and `attend` so that incremental decoding can project the encoder's
    keys/values once per query and keep the decoder's own keys/values in a cache.
    """

    cfg: TransformerConfig

    def setup(self):
        cfg = self.cfg
        self.query = _dense(cfg.attn_dim, ("embed", "heads"), cfg)
        # No key bias: it shifts every score of a query equally, so softmax ignores it and
        # its gradient is pure rounding noise (which Adam would amplify to full-size steps).
        self.key = _dense(cfg.attn_dim, ("embed", "heads"), cfg, use_bias=False)
        self.value = _dense(cfg.attn_dim, ("embed", "heads"), cfg)
        self.out = _dense(cfg.d_model, ("heads", "embed"), cfg)

    def _heads(self, y):
        return einops.rearrange(y, "... (h d) -> ... h d", h=self.cfg.num_heads)

    def project_q(self, x):
        """[B, T, D] -> [B, T, H, hd]."""
        return self._heads(self.query(x))

    def project_kv(self, kv):
        """[B, S, D] -> keys and values [B, S, H, hd]."""
        return self._heads(self.key(kv)), self._heads(self.value(kv))

    def attend(self, q, k, v, mask=None, is_causal=False, impl=None):
        """Attention of projected q [B,T,H,hd] over k, v [B,S,H,hd], then the output projection.
        `impl`: 'xla' | 'cudnn' for this call (default: the config's, resolved)."""
        impl = impl or resolve_attention(self.cfg.attention_impl, q.dtype, q.shape[-1],
                                         lengths=(q.shape[1], k.shape[1]))
        out = attention(q, k, v, mask=mask, is_causal=is_causal, implementation=impl)
        return self.out(einops.rearrange(out, "b t h d -> b t (h d)"))

    def __call__(self, x, kv, mask=None, is_causal=False):
        k, v = self.project_kv(kv)
        return self.attend(self.project_q(x), k, v, mask=mask, is_causal=is_causal)

    def _weights(self, dense: nn.Dense, dtype):
        params = _params(dense)
        return params["kernel"].astype(dtype), params.get("bias")

    def fold_kv(self, kv) -> FoldedKV:
        """Keys and values of kv [B, S, D] with the query and output projections folded in.

        For many query rows against keys that never change (cross-attention while decoding:
        every beam of every step attends to its query's encoder output), per head h
        (q Wq_h + bq_h) . k_h = y . (Wq_h k_h^T) + bq_h . k_h and p_h v_h Wo_h = p_h (v_h Wo_h),
        so a step scores with one matmul and sums the values straight into the model width
        with another (`attend_folded`) instead of projecting q, attending per head and
        projecting out: three kernels fewer per layer and step on a GPU, and fewer FLOPs while
        S (H - 1) < D, for H times the bytes per query (`fold_cross_attention` decides).
        """
        k, v = self.project_kv(kv)  # [B, S, H, hd]
        h, hd = k.shape[2], k.shape[3]
        wq, bq = self._weights(self.query, k.dtype)
        wo, bo = self._weights(self.out, v.dtype)
        scale = 1.0 / np.sqrt(hd)
        wq = wq.reshape(wq.shape[0], h, hd)
        keys = jnp.einsum("dhe,bshe->bhsd", wq, k) * jnp.asarray(scale, k.dtype)
        key_bias = jnp.einsum("he,bshe->bhs", bq.reshape(h, hd).astype(jnp.float32),
                              k.astype(jnp.float32)) * scale
        values = jnp.einsum("bshe,heo->bhso", v, wo.reshape(h, hd, wo.shape[-1]))
        return FoldedKV(keys, key_bias, values, bo)

    @staticmethod
    def attend_folded(y, folded: FoldedKV, mask=None):
        """`attend` of rows y [B, R, D] (R per query) over `fold_kv`'s keys and values; the
        scores and softmax in float32 as in jax.nn.dot_product_attention (same masking)."""
        keys, key_bias, values, bo = folded
        logits = jnp.einsum("brd,bhsd->brhs", y, keys, preferred_element_type=jnp.float32)
        logits = logits + key_bias[:, None]
        if mask is not None:  # [B, 1, 1, S]: B, R, H, S broadcasts alike
            logits = jnp.where(mask, logits, -0.7 * float(jnp.finfo(jnp.float32).max))
        probs = jax.nn.softmax(logits, axis=-1).astype(values.dtype)
        out = jnp.einsum("brhs,bhso->bro", probs, values)
        return out + bo.astype(out.dtype)


def dropout_keys(module: nn.Module, train: bool, count: int):
    """`count` dropout keys from one `make_rng` (None when not training).

    Why: flax derives each Dropout call's key by its own `fold_in`, a chain of about 120 scalar
    integer ops that the TPU compiler leaves unfused (a third of `base`'s unfused ops,
    docs/scaling.md); one vectorised split for the whole stack costs one chain. The pretrained
    `minilm` encoder keeps flax's own keys."""
    if not train or module.cfg.dropout_rate == 0:
        return None
    return jax.random.split(module.make_rng("dropout"), count)


def _key(keys, i: int):
    return None if keys is None else keys[i]


class Mlp(nn.Module):
    cfg: TransformerConfig

    @nn.compact
    def __call__(self, x, train: bool, rng=None):
        cfg = self.cfg
        y = nn.gelu(_dense(cfg.mlp_dim, ("embed", "mlp"), cfg, "wi")(x))
        y = nn.Dropout(cfg.dropout_rate)(y, deterministic=not train, rng=rng)
        return _dense(cfg.d_model, ("mlp", "embed"), cfg, "wo")(y)


class EncoderLayer(nn.Module):
    cfg: TransformerConfig
    DROPOUTS = 3  # dropout keys a layer takes (`rngs`)

    @nn.compact
    def __call__(self, x, key_mask, train: bool, rngs=None):
        drop = nn.Dropout(self.cfg.dropout_rate)
        y = _layer_norm(self.cfg, "ln_attn")(x)
        x = x + drop(Attention(self.cfg, name="self_attn")(y, y, mask=key_mask),
                     deterministic=not train, rng=_key(rngs, 0))
        y = _layer_norm(self.cfg, "ln_mlp")(x)
        x = x + drop(Mlp(self.cfg, name="mlp")(y, train, _key(rngs, 1)),
                     deterministic=not train, rng=_key(rngs, 2))
        return nn.with_logical_constraint(x, ACT_AXES)


class DecoderLayer(nn.Module):
    cfg: TransformerConfig
    DROPOUTS = 4  # dropout keys a layer takes (`rngs`)

    def setup(self):
        cfg = self.cfg
        self.ln_self = _layer_norm(cfg)
        self.self_attn = Attention(cfg)
        self.ln_cross = _layer_norm(cfg)
        self.cross_attn = Attention(cfg)
        self.ln_mlp = _layer_norm(cfg)
        self.mlp = Mlp(cfg)
        self.drop = nn.Dropout(cfg.dropout_rate)

    def __call__(self, x, enc_out, cross_mask, train: bool, rngs=None):
        keep = not train
        y = self.ln_self(x)
        x = x + self.drop(self.self_attn(y, y, is_causal=True), deterministic=keep,
                          rng=_key(rngs, 0))
        y = self.ln_cross(x)
        x = x + self.drop(self.cross_attn(y, enc_out, mask=cross_mask), deterministic=keep,
                          rng=_key(rngs, 1))
        y = self.ln_mlp(x)
        x = x + self.drop(self.mlp(y, train, _key(rngs, 2)), deterministic=keep,
                          rng=_key(rngs, 3))
        return nn.with_logical_constraint(x, ACT_AXES)

    def cross_kv(self, enc_out, fold: bool):
        """This layer's cross-attention keys/values [B, S, H, hd], or with `fold` a `FoldedKV`,
        computed once per query."""
        return self.cross_attn.fold_kv(enc_out) if fold else self.cross_attn.project_kv(enc_out)

    def step(self, x, self_kv, cross_kv, cross_mask):
        """One new position for N = B*R rows (R rows per query, consecutive), inference only.

        x [N, D]; self_kv: keys/values [N, t, H, hd] of the positions so far; cross_kv: this
        layer's `cross_kv` (B queries, folded or not); cross_mask bool[B, 1, 1, S]. Returns
        (x [N, D], self_kv grown to t + 1).
        """
        b = cross_kv[0].shape[0]
        y = decoding_norm(self.ln_self, x)[:, None]
        k, v = self.self_attn.project_kv(y)
        k = jnp.concatenate([self_kv[0], k.astype(self_kv[0].dtype)], axis=1)
        v = jnp.concatenate([self_kv[1], v.astype(self_kv[1].dtype)], axis=1)
        # One new position per row: XLA's attention (a cuDNN flash call per step buys nothing).
        x = x + self.self_attn.attend(self.self_attn.project_q(y), k, v, impl="xla")[:, 0]
        # A query's R rows act as R query positions over that query's encoder output.
        y = einops.rearrange(decoding_norm(self.ln_cross, x), "(b r) d -> b r d", b=b)
        if isinstance(cross_kv, FoldedKV):
            y = self.cross_attn.attend_folded(y, cross_kv, cross_mask)
        else:
            y = self.cross_attn.attend(self.cross_attn.project_q(y), *cross_kv, mask=cross_mask,
                                       impl="xla")
        x = x + einops.rearrange(y, "b r d -> (b r) d")
        return x + self.mlp(decoding_norm(self.ln_mlp, x), False), (k, v)


class EncoderDecoder(nn.Module):
    """The OneSearch seq2seq model: query tokens in, SID-token logits out.

    With `cfg.encoder == 'minilm'` the encoder is MiniLM-L6's BERT (params under 'encoder', its
    own word-embedding table over the whole vocabulary, projected to d_model if the widths
    differ); with 'frozen_minilm' it reads MiniLM states computed outside the model (cached for
    training) through `state_proj` and `enc_layers` adapter layers (0 allowed); the decoder and
    its tied embedding table are the same either way.
    """

    cfg: TransformerConfig

    def setup(self):
        cfg = self.cfg
        self.embed = nn.Embed(
            cfg.padded_vocab_size,
            cfg.d_model,
            dtype=jnp.dtype(cfg.dtype),
            param_dtype=jnp.dtype(cfg.param_dtype),
            embedding_init=_init(nn.initializers.normal(stddev=1.0), "vocab", "embed"),
        )
        pretrained = cfg.encoder == "minilm"
        if cfg.encoder == "frozen_minilm":
            # The trainable reader of frozen MiniLM states (data/encoder_memory.py): a projection
            # of each slot's state to d_model, added to its token embedding, then the adapter.
            self.state_proj = _dense(cfg.d_model, (None, "embed"), cfg, "state_proj")
        if cfg.positions == "learned":
            pos_init = _init(nn.initializers.normal(stddev=0.02), "length", "embed")
            if not pretrained:
                self.enc_pos = self.param(
                    "enc_pos", pos_init, (cfg.max_enc_len, cfg.d_model), jnp.dtype(cfg.param_dtype)
                )
            self.dec_pos = self.param(
                "dec_pos", pos_init, (cfg.max_dec_len, cfg.d_model), jnp.dtype(cfg.param_dtype)
            )
        if pretrained:
            # MINILM_L6 holds MiniLMEncoder's field names; cfg.enc_layers is validated == 6.
            self.encoder = MiniLMEncoder(
                vocab_size=cfg.vocab_size,
                dropout_rate=cfg.dropout_rate,
                dtype=jnp.dtype(cfg.dtype),
                **MINILM_L6,
            )
            if MINILM_L6["hidden_size"] != cfg.d_model:
                self.enc_proj = _dense(cfg.d_model, (None, "embed"), cfg, "enc_proj")
        else:
            self.enc_layers = [EncoderLayer(cfg, name=f"enc_{i}") for i in range(cfg.enc_layers)]
            self.enc_norm = _layer_norm(cfg, "enc_norm")
        self.dec_layers = [DecoderLayer(cfg, name=f"dec_{i}") for i in range(cfg.dec_layers)]
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

    def _embed(self, tokens, which: str, train: bool, extra=None, rng=None):
        x = self.embed(tokens) + self._positions(which, tokens.shape[1]).astype(
            jnp.dtype(self.cfg.dtype)
        )
        if extra is not None:
            x = x + extra
        x = self.dropout(x.astype(jnp.dtype(self.cfg.dtype)), deterministic=not train, rng=rng)
        return nn.with_logical_constraint(x, ACT_AXES)

    def _layer_keys(self, train: bool, per_layer: int, layers: int):
        """(embedding dropout key, per layer its `per_layer` keys) from one split, or Nones."""
        keys = dropout_keys(self, train, 1 + per_layer * layers)
        if keys is None:
            return None, [None] * layers
        return keys[0], [keys[1 + per_layer * i: 1 + per_layer * (i + 1)] for i in range(layers)]

    def encode(self, enc_tokens, train: bool = False, enc_states=None):
        """Returns (enc_out [B,S,D], enc_mask bool[B,S]); mask is False on padding.

        `enc_states` float[B,S,384]: the frozen MiniLM state of each memory slot, which the
        `frozen_minilm` encoder needs (and the others refuse)."""
        if enc_tokens.ndim != 2:
            raise ValueError(f"enc_tokens must be [batch, length], got shape {enc_tokens.shape}")
        enc_mask = enc_tokens != PAD_ID
        if (enc_states is not None) != (self.cfg.encoder == "frozen_minilm"):
            raise ValueError(
                "the frozen_minilm encoder reads enc_states (data/encoder_memory.py) with its "
                "memory tokens" if enc_states is None else
                f"enc_states given, but model.encoder={self.cfg.encoder!r} reads tokens only")
        if self.cfg.encoder == "minilm":
            x = self.encoder(enc_tokens, enc_mask.astype(jnp.int32), deterministic=not train)
            if MINILM_L6["hidden_size"] != self.cfg.d_model:
                x = self.enc_proj(x)
            return nn.with_logical_constraint(x, ACT_AXES), enc_mask
        extra = None  # frozen_minilm: each slot's projected state, added to its token embedding
        if enc_states is not None:
            if enc_states.shape[:2] != enc_tokens.shape:
                raise ValueError(f"enc_states {enc_states.shape} do not match enc_tokens "
                                 f"{enc_tokens.shape}")
            extra = self.state_proj(enc_states.astype(jnp.dtype(self.cfg.dtype)))
        embed_key, layer_keys = self._layer_keys(train, EncoderLayer.DROPOUTS,
                                                 len(self.enc_layers))
        x = self._embed(enc_tokens, "enc", train, extra=extra, rng=embed_key)
        for layer, keys in zip(self.enc_layers, layer_keys):
            x = layer(x, enc_mask[:, None, None, :], train, keys)
        return self.enc_norm(x), enc_mask

    def decode_hidden(self, enc_out, enc_mask, dec_tokens, train: bool = False):
        """Causal decoder over the whole prefix; returns the final hidden states [B,T,D]."""
        if dec_tokens.ndim != 2:
            raise ValueError(f"dec_tokens must be [batch, length], got shape {dec_tokens.shape}")
        cross_mask = enc_mask[:, None, None, :]
        embed_key, layer_keys = self._layer_keys(train, DecoderLayer.DROPOUTS,
                                                 len(self.dec_layers))
        x = self._embed(dec_tokens, "dec", train, rng=embed_key)
        for layer, keys in zip(self.dec_layers, layer_keys):
            x = layer(x, enc_out, cross_mask, train, keys)
        return self.dec_norm(x)

    def decode(self, enc_out, enc_mask, dec_tokens, train: bool = False,
               f32_logits: bool = True):
        """Causal decoder over the whole prefix; returns logits [B,T,V] (`full_logits`)."""
        x = self.decode_hidden(enc_out, enc_mask, dec_tokens, train)
        return self.full_logits(x, f32_logits)

    def full_logits(self, x, f32_logits: bool = True):
        """Logits [..., vocab_size] over the whole vocabulary (`project_slice`; the padding rows
        of the table are never projected): float32, or with `f32_logits=False` in the compute
        dtype, for a loss that upcasts inside its own fusions (`losses.token_cross_entropy`), so
        that in bfloat16 no float32 copy of [B, T, V] is written and the gradient comes back in
        bfloat16."""
        return self.project_slice(x, 0, self.cfg.vocab_size,
                                  jnp.float32 if f32_logits else x.dtype)

    def project_slice(self, x, start: int, size: int, dtype=jnp.float32):
        """`dtype` logits [..., size] of vocabulary ids [start, start+size) only (one SID level's
        token range, or the whole vocabulary): the tied output projection, scaled like T5 so
        N(0,1) embeddings give unit-scale logits. The one projection decoding and every training
        stage share. The scale goes on x ([..., D], not [..., size]) and the matmul writes
        `dtype` straight from its accumulator, so no [B, T, V] buffer is rescaled or
        converted."""
        table = self.embed.embedding
        if (start, size) != (0, table.shape[0]):
            table = jax.lax.dynamic_slice_in_dim(table, start, size, axis=0)
        x = x * jnp.asarray(1.0 / np.sqrt(self.cfg.d_model), x.dtype)
        return jnp.einsum("...d,vd->...v", x, table.astype(x.dtype),
                          preferred_element_type=dtype)

    def level_log_probs_at(self, x, positions, level_ranges):
        """float32 [B, L, max size] log-probs over SID level l's codes at decoder positions
        positions[:, l] (int[B, L]), log_softmax over that level's slice only; codes past a
        level's size are -1e9 (probability 0). Never materialises [B, T, V]."""
        picked = jnp.take_along_axis(x, positions[:, :, None].astype(jnp.int32), axis=1)  # [B,L,D]
        width = max(size for _, size in level_ranges)
        out = []
        for l, (start, size) in enumerate(level_ranges):
            lp = jax.nn.log_softmax(self.project_slice(picked[:, l], start, size), axis=-1)
            out.append(jnp.pad(lp, ((0, 0), (0, width - size)), constant_values=-1e9))
        return jnp.stack(out, axis=1)

    def sid_log_probs(self, enc_tokens, dec_inputs, positions, level_ranges, train: bool = False,
                      enc_states=None):
        """Teacher-forced SID-slice log-probs [B, L, K] (see `level_log_probs_at`)."""
        enc_out, enc_mask = self.encode(enc_tokens, train, enc_states)
        x = self.decode_hidden(enc_out, enc_mask, dec_inputs, train)
        return self.level_log_probs_at(x, positions, level_ranges)

    def logits_and_sid_log_probs(self, enc_tokens, dec_inputs, positions, level_ranges,
                                 train: bool = False, enc_states=None, f32_logits: bool = True):
        """One forward pass: full-vocabulary logits [B,T,V] (for the CE over every task's
        targets; `full_logits`) and the SID-slice log-probs [B,L,K] at `positions` (for
        distillation)."""
        enc_out, enc_mask = self.encode(enc_tokens, train, enc_states)
        x = self.decode_hidden(enc_out, enc_mask, dec_inputs, train)
        return (self.full_logits(x, f32_logits),
                self.level_log_probs_at(x, positions, level_ranges))

    def cross_cache(self, enc_out, fold: bool | None = None):
        """Per decoder layer, its cross-attention keys/values (`DecoderLayer.cross_kv`), once per
        query; folded when `fold`, by default when `fold_cross_attention` says it pays."""
        fold = fold_cross_attention(fold, enc_out.shape[0], self.cfg, enc_out.shape[1])
        return tuple(layer.cross_kv(enc_out, fold) for layer in self.dec_layers)

    def decode_step(self, tokens, step: int, self_cache, cross_cache, enc_mask, logit_range):
        """Incremental decoding: logits of position `step` given the token at `step`.

        tokens int32[N] (N = B*R rows, R per query, consecutive); `step` a Python int;
        self_cache: per layer the keys/values [N, step, H, hd] of earlier positions;
        cross_cache from `cross_cache`; enc_mask bool[B, S]. Only the vocabulary slice
        `logit_range = (start, size)` is projected (a SID level's tokens), so a step costs
        O(size) rather than O(vocab). Returns (float32 logits [N, size], self_cache grown by one).
        Same maths as `decode` at inference (tests check parity).
        """
        x = self.embed(tokens) + self._positions("dec", step + 1)[step].astype(
            jnp.dtype(self.cfg.dtype)
        )
        cross_mask = enc_mask[:, None, None, :]
        new_cache = []
        for layer, kv, ckv in zip(self.dec_layers, self_cache, cross_cache):
            x, kv = layer.step(x, kv, ckv, cross_mask)
            new_cache.append(kv)
        x = decoding_norm(self.dec_norm, x)
        start, size = logit_range
        return self.project_slice(x, start, size), tuple(new_cache)

    def __call__(self, enc_tokens, dec_inputs, train: bool = False, enc_states=None,
                 f32_logits: bool = True):
        enc_out, enc_mask = self.encode(enc_tokens, train, enc_states)
        return self.decode(enc_out, enc_mask, dec_inputs, train, f32_logits)


def init_params(model: EncoderDecoder, rng) -> dict:
    """Fresh (boxed) parameters; their shapes do not depend on the lengths of the dummy inputs."""
    dummy = jnp.ones((1, 1), jnp.int32)
    states = None
    if model.cfg.encoder == "frozen_minilm":
        states = jnp.zeros((1, 1, FROZEN_STATE_DIM), jnp.float32)
    return model.init(rng, dummy, dummy, enc_states=states)["params"]


def build_model(cfg: TransformerConfig) -> EncoderDecoder:
    """The model for a config (dict-like configs are accepted too)."""
    if not isinstance(cfg, TransformerConfig):
        cfg = TransformerConfig.from_dict(cfg)
    return EncoderDecoder(cfg)


DecodeState = tuple  # (enc_out [N,S,D], enc_mask bool[N,S])
LogitRanges = tuple  # per decoding step, the (start, size) vocabulary slice to score


def encode_for_beams(model: EncoderDecoder, params, enc_tokens, num_beams: int,
                     enc_states=None) -> DecodeState:
    """Encodes once and repeats per beam: row i*num_beams + j is beam j of example i."""
    enc_out, enc_mask = model.apply({"params": params}, enc_tokens, enc_states=enc_states,
                                    method=EncoderDecoder.encode)
    return (jnp.repeat(enc_out, num_beams, axis=0), jnp.repeat(enc_mask, num_beams, axis=0))


def make_logits_fn(model: EncoderDecoder, params) -> Callable:
    """Next-token logits for beam search / sampling.

    `logits_fn(state, tokens, step) -> (float32[N, V], state)` where tokens are
    int32[N, L >= step+1] (BOS + SID tokens so far, anything after `step` ignored
    thanks to the causal mask) and the logits are those at position `step`.
    `step` may be a traced integer. No KV cache: the whole prefix is re-decoded over the full
    vocabulary each step (the reference path; serving uses `make_cached_logits_fn`).
    """

    def logits_fn(state: DecodeState, tokens, step):
        enc_out, enc_mask = state
        logits = model.apply(
            {"params": params}, enc_out, enc_mask, tokens, method=EncoderDecoder.decode
        )
        last = jax.lax.dynamic_index_in_dim(logits, step, axis=1, keepdims=False)
        return last.astype(jnp.float32), state

    return logits_fn


def empty_self_cache(cfg: TransformerConfig, rows: int) -> tuple:
    """Per decoder layer, (keys, values) [rows, 0, H, hd]: no position decoded yet."""
    empty = jnp.zeros((rows, 0, cfg.num_heads, cfg.attn_dim // cfg.num_heads),
                      jnp.dtype(cfg.dtype))
    return tuple((empty, empty) for _ in range(cfg.dec_layers))


def make_cached_logits_fn(
    model: EncoderDecoder, params, enc_out, enc_mask, logit_ranges, fold: bool | None = None
) -> tuple[Callable, tuple]:
    """(logits_fn, initial state) for incremental decoding with a KV cache.

    The serving path of beam search and sampling (`level_logits=True` there): each call embeds
    only the newest token, attends over the self-attention cache carried in the state (which
    the search tiles per beam and re-gathers along the chosen beams), reuses cross-attention
    keys/values computed once per query (closed over, never tiled per beam or re-gathered;
    `fold`: with the query and output projections folded in, default `fold_cross_attention`'s
    choice), and projects onto `logit_ranges[step]` only, e.g. `zip(vocab.level_offsets,
    vocab.level_sizes)`.
    enc_out [B, S, D] and enc_mask [B, S] are per query; the initial (empty) cache has B rows and
    any N = B*R rows (R per query, rows b*R + r) may be decoded.
    """
    logit_ranges = tuple((int(a), int(b)) for a, b in logit_ranges)
    cross = model.apply({"params": params}, enc_out, fold, method=EncoderDecoder.cross_cache)
    state = empty_self_cache(model.cfg, enc_out.shape[0])

    def logits_fn(self_cache, tokens, step: int):
        if not isinstance(step, int) or not 0 <= step < len(logit_ranges):
            raise ValueError(f"step must be a Python int in [0, {len(logit_ranges)}), got {step}")
        return model.apply(
            {"params": params},
            tokens[:, step],
            step,
            self_cache,
            cross,
            enc_mask,
            logit_ranges[step],
            method=EncoderDecoder.decode_step,
        )

    return logits_fn, state
