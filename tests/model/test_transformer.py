"""Behaviour of the encoder-decoder: shapes, causality, padding, tying, logits_fn."""

import contextlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from onesearch_jax.model import presets
from onesearch_jax.model.transformer import (
    EncoderDecoder,
    FoldedKV,
    _cudnn_flash_device,
    build_model,
    decoding_norm,
    encode_for_beams,
    fold_cross_attention,
    key_lengths,
    make_cached_logits_fn,
    make_logits_fn,
    resolve_attention,
    target_platform,
)

B, S, T = 3, 10, 6


def _cfg(**kw):
    d = presets.get_preset("tiny")
    d.update({"dropout_rate": 0.0, **kw})
    return presets.TransformerConfig(**d)


@pytest.fixture(scope="module")
def setup():
    # vocab 300 differs from every other width, so tying is checkable; dropout is on but
    # every apply below is deterministic (train=False) except the dropout test's.
    cfg = _cfg(vocab_size=300, dropout_rate=0.3)
    model = build_model(cfg)
    rng = np.random.default_rng(0)
    enc = rng.integers(1, cfg.vocab_size, (B, S)).astype(np.int32)
    enc[0, 7:] = 0  # padding at the end of example 0
    dec = rng.integers(1, cfg.vocab_size, (B, T)).astype(np.int32)
    variables = jax.jit(model.init)(jax.random.key(0), enc, dec)
    params = nn.unbox(variables["params"])
    apply = jax.jit(lambda p, e, d: model.apply({"params": p}, e, d))
    return cfg, model, params, apply, enc, dec


def test_shapes_and_dtype(setup):
    cfg, model, params, apply, enc, dec = setup
    logits = apply(params, enc, dec)
    assert logits.shape == (B, T, cfg.vocab_size)
    assert logits.dtype == jnp.float32
    assert np.all(np.isfinite(logits))


def test_params_have_logical_names_and_are_2d():
    cfg = _cfg()
    variables = jax.eval_shape(
        build_model(cfg).init,
        jax.random.key(0),
        jnp.ones((1, 4), jnp.int32),
        jnp.ones((1, 3), jnp.int32),
    )
    leaves = jax.tree.leaves(
        variables["params"], is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned)
    )
    assert leaves and all(isinstance(x, nn.LogicallyPartitioned) for x in leaves)
    assert all(x.value.ndim <= 2 and len(x.names) == x.value.ndim for x in leaves)
    n = sum(int(np.prod(x.value.shape)) for x in leaves)
    assert n == presets.param_count(cfg)


def test_decoder_is_causal(setup):
    cfg, model, params, apply, enc, dec = setup
    changed = dec.copy()
    changed[:, 3] = (changed[:, 3] % (cfg.vocab_size - 1)) + 1
    a, b = apply(params, enc, dec), apply(params, enc, changed)
    np.testing.assert_allclose(a[:, :3], b[:, :3], atol=1e-6)
    assert np.max(np.abs(a[:, 3:] - b[:, 3:])) > 1e-3


def test_encoder_padding_does_not_change_outputs(setup):
    cfg, model, params, apply, enc, dec = setup
    short = apply(params, enc[:1, :7], dec[:1])  # example 0 without its padding
    padded = apply(params, enc[:1], dec[:1])
    np.testing.assert_allclose(short, padded, atol=1e-5)
    more_pad = np.concatenate([enc[:1], np.zeros((1, 5), np.int32)], axis=1)
    np.testing.assert_allclose(apply(params, more_pad, dec[:1]), padded, atol=1e-5)


def test_embeddings_are_tied(setup):
    cfg, model, params, apply, enc, dec = setup
    assert "embedding" in params["embed"]
    kernels = [
        k for k in jax.tree_util.tree_leaves_with_path(params) if cfg.vocab_size in k[1].shape
    ]
    assert len(kernels) == 1  # a single [V, D] table serves input and output
    # Changing the output row of one token changes exactly that token's logit.
    p2 = jax.tree.map(lambda x: x, params)
    bump = jax.random.normal(jax.random.key(3), (cfg.d_model,))  # not constant: LN output sums to 0
    p2["embed"]["embedding"] = params["embed"]["embedding"].at[5].add(bump)
    enc_nofive = np.where(enc == 5, 6, enc)
    dec_nofive = np.where(dec == 5, 6, dec)
    a, b = apply(params, enc_nofive, dec_nofive), apply(p2, enc_nofive, dec_nofive)
    diff = np.abs(np.asarray(a - b)).max(axis=(0, 1))
    assert diff[5] > 1e-3 and np.delete(diff, 5).max() < 1e-6


def test_logits_fn_matches_full_decode(setup):
    cfg, model, params, apply, enc, dec = setup
    beams = 2
    state = encode_for_beams(model, params, enc, beams)
    assert state[0].shape[0] == B * beams
    logits_fn = jax.jit(make_logits_fn(model, params))
    full = np.repeat(np.asarray(apply(params, enc, dec)), beams, axis=0)
    tokens = np.repeat(dec, beams, axis=0)
    # Fixed-length buffer with a traced step (how a jitted beam search calls it).
    for step in range(T):
        last, state = logits_fn(state, tokens, jnp.int32(step))
        np.testing.assert_allclose(last, full[:, step], atol=1e-5)
    # A prefix of exactly step+1 tokens gives the same answer.
    last, _ = logits_fn(state, tokens[:, :3], 2)
    np.testing.assert_allclose(last, full[:, 2], atol=1e-5)


@pytest.mark.parametrize("fold,platform", [(True, None), (False, None), (True, "gpu")])
@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_cached_decode_matches_full_decode(setup, positions, fold, platform):
    """KV-cached incremental decoding reproduces `decode` on every row, step and vocab slice,
    with R rows per query sharing that query's cross-attention keys/values, folded or not, and
    traced for a GPU (the two-pass `decoding_norm`)."""
    cfg, model, params, apply, enc, dec = setup
    if positions == "sinusoidal":
        cfg = _cfg(vocab_size=300, positions="sinusoidal")
        model = build_model(cfg)
        params = nn.unbox(jax.jit(model.init)(jax.random.key(4), enc, dec)["params"])
    rng = np.random.default_rng(5)
    params = _with_biases(params, rng)  # the fold's bias terms (init gives zeros) count too
    rows = 2
    tokens = rng.integers(1, cfg.vocab_size, (B * rows, T)).astype(np.int32)
    enc_out, enc_mask = model.apply({"params": params}, enc, method=EncoderDecoder.encode)
    full = np.asarray(
        model.apply(
            {"params": params},
            jnp.repeat(enc_out, rows, 0),
            jnp.repeat(enc_mask, rows, 0),
            tokens,
            method=EncoderDecoder.decode,
        )
    )
    ranges = [(0, cfg.vocab_size), (10, 7), (250, 50), (0, 1), (3, 290), (299, 1)]
    logits_fn, cache = make_cached_logits_fn(model, params, enc_out, enc_mask, ranges, fold)
    cache = jax.tree.map(lambda x: jnp.repeat(x, rows, axis=0), cache)  # as a search tiles it
    for step, (start, size) in enumerate(ranges):
        with target_platform(platform) if platform else contextlib.nullcontext():
            logits, cache = jax.jit(logits_fn, static_argnums=2)(cache, tokens, step)
        assert logits.shape == (B * rows, size)
        assert cache[0][0].shape[1] == step + 1
        np.testing.assert_allclose(logits, full[:, step, start : start + size], atol=2e-5)
    with pytest.raises(ValueError, match="step must be"):
        logits_fn(cache, tokens, len(ranges))


def _with_biases(params, rng):
    return jax.tree_util.tree_map_with_path(
        lambda path, x: x + 0.3 * rng.standard_normal(x.shape).astype(x.dtype)
        if path[-1].key == "bias" else x, params)


def test_folded_cross_attention_in_bfloat16():
    """bf16 decoding with the cross-attention folded gives the unfolded logits up to bf16
    rounding (the fold multiplies bf16 weights into bf16 keys once per query)."""
    cfg = _cfg(vocab_size=300, dtype="bfloat16")
    model = build_model(cfg)
    rng = np.random.default_rng(6)
    enc = rng.integers(1, cfg.vocab_size, (B, S)).astype(np.int32)
    enc[1, 4:] = 0
    dec = rng.integers(1, cfg.vocab_size, (B, T)).astype(np.int32)
    params = _with_biases(nn.unbox(jax.jit(model.init)(jax.random.key(7), enc, dec)["params"]),
                          rng)
    enc_out, enc_mask = model.apply({"params": params}, enc, method=EncoderDecoder.encode)
    ranges = [(0, cfg.vocab_size)] * 3
    out = {}
    for fold in (True, False):
        logits_fn, cache = make_cached_logits_fn(model, params, enc_out, enc_mask, ranges, fold)
        folded = isinstance(model.apply({"params": params}, enc_out, fold,
                                        method=EncoderDecoder.cross_cache)[0], FoldedKV)
        assert folded == fold
        for step in range(3):
            logits, cache = logits_fn(cache, dec, step)
        out[fold] = np.asarray(logits)
    scale = np.abs(out[False]).max()
    np.testing.assert_allclose(out[True], out[False], atol=0.03 * scale)


def test_decoding_norm_two_pass_on_a_gpu_target():
    """On a GPU target a decoding step's layer norm is the two-pass one: flax's values, and
    closer to exact where flax's E[x^2] - E[x]^2 loses digits (rows with a large mean); on this
    CPU it is flax's own, bit for bit."""
    ln = nn.LayerNorm(epsilon=1e-6)
    scale, bias = np.linspace(0.5, 1.5, 64), np.linspace(-1, 1, 64)
    params = {"params": {"scale": jnp.asarray(scale, jnp.float32),
                         "bias": jnp.asarray(bias, jnp.float32)}}
    norm = jax.jit(lambda y: ln.apply(params, y, method=lambda m, y: decoding_norm(m, y)))
    for shift in (0.0, 100.0):
        x = shift + np.random.default_rng(8).standard_normal((5, 64)).astype(np.float32)
        ref = jax.jit(ln.apply)(params, x)
        np.testing.assert_array_equal(norm(x), ref)
        with target_platform("gpu"):
            two_pass = jax.jit(lambda y: ln.apply(params, y, method=lambda m, y: decoding_norm(
                m, y)))(x)
        centred = x.astype(np.float64) - x.astype(np.float64).mean(-1, keepdims=True)
        exact = centred / np.sqrt((centred ** 2).mean(-1, keepdims=True) + 1e-6) * scale + bias
        np.testing.assert_allclose(two_pass, exact, atol=5e-5)
        if shift == 0:
            np.testing.assert_allclose(two_pass, ref, atol=1e-5)
        else:
            assert np.abs(two_pass - exact).max() < np.abs(ref - exact).max() / 10


def test_when_the_cross_attention_folds():
    cfg = presets.TransformerConfig(**presets.get_preset("small"))  # 4 layers, 4 heads, 256 wide
    per_query = 4 * 2 * 4 * 32 * 256 * 4  # layers x (keys, values) x H x S x D x f32: 1 MiB
    assert per_query == 1 << 20
    assert fold_cross_attention(None, 4, cfg, 32, "cpu")  # 4 MiB: in a CPU's caches
    assert not fold_cross_attention(None, 5, cfg, 32, "cpu")
    assert fold_cross_attention(None, 64, cfg, 32, "gpu") and fold_cross_attention(
        None, 64, cfg, 32, "cuda")
    assert not fold_cross_attention(None, 65, cfg, 32, "gpu")
    assert not fold_cross_attention(None, 2, cfg, 128, "tpu")
    half = presets.TransformerConfig(**{**presets.get_preset("small"), "dtype": "bfloat16"})
    assert fold_cross_attention(None, 8, half, 32, "cpu")
    assert fold_cross_attention(True, 10**6, cfg, 32, "cpu")
    assert not fold_cross_attention(False, 1, cfg, 32, "gpu")


def test_bfloat16_compute_and_sinusoidal_positions():
    cfg = _cfg(dtype="bfloat16", positions="sinusoidal")
    model = EncoderDecoder(cfg)
    enc = jnp.ones((2, 5), jnp.int32)
    dec = jnp.ones((2, 3), jnp.int32)
    variables = jax.jit(model.init)(jax.random.key(1), enc, dec)
    params = nn.unbox(variables["params"])
    assert "enc_pos" not in params
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
    logits = jax.jit(model.apply)({"params": params}, enc, dec)
    assert logits.dtype == jnp.float32 and logits.shape == (2, 3, cfg.vocab_size)


def test_dropout_only_in_training(setup):
    cfg, model, params, apply, enc, dec = setup
    train_apply = jax.jit(
        lambda p, e, d, r: model.apply({"params": p}, e, d, train=True, rngs={"dropout": r})
    )
    a = train_apply(params, enc, dec, jax.random.key(2))
    b = train_apply(params, enc, dec, jax.random.key(3))
    assert np.abs(np.asarray(a - b)).max() > 1e-3  # random masks differ
    assert np.abs(np.asarray(a - apply(params, enc, dec))).max() > 1e-3
    np.testing.assert_array_equal(a, train_apply(params, enc, dec, jax.random.key(2)))


def test_every_dropout_site_gets_its_own_key_from_one_split_per_stack(setup):
    """The keys come from `dropout_keys` (one make_rng per encoder or decoder stack, split), not
    from a fold_in per Dropout call: every call gets one, and no two calls share one."""
    cfg, model, params, apply, enc, dec = setup
    seen = []

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, nn.Dropout) and context.method_name == "__call__":
            seen.append(kwargs.get("rng"))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        model.apply({"params": params}, enc, dec, train=True, rngs={"dropout": jax.random.key(2)})
    # embeddings (2), 3 per encoder layer, 4 per decoder layer (Mlp's inner dropout included)
    assert len(seen) == 2 + 3 * cfg.enc_layers + 4 * cfg.dec_layers
    assert all(k is not None for k in seen)
    data = {tuple(np.asarray(jax.random.key_data(k)).tolist()) for k in seen}
    assert len(data) == len(seen)


def test_bad_config_and_lengths_raise():
    with pytest.raises(ValueError, match="num_heads"):
        _cfg(num_heads=5)
    with pytest.raises(ValueError, match="unknown model config keys"):
        presets.TransformerConfig.from_dict({**presets.get_preset("tiny"), "d_modle": 3})
    with pytest.raises(ValueError, match="unknown model preset"):
        presets.get_preset("huge")
    model = EncoderDecoder(_cfg())
    with pytest.raises(ValueError, match="max_dec_len"):
        jax.eval_shape(
            model.init, jax.random.key(0), jnp.ones((1, 4), jnp.int32), jnp.ones((1, 40), jnp.int32)
        )


def test_auto_attention_takes_cudnn_only_where_it_runs():
    assert resolve_attention("auto", jnp.bfloat16, 64, platform="gpu") == "cudnn"
    assert resolve_attention(None, jnp.float16, 128, platform="cuda") == "cudnn"
    assert resolve_attention("auto", jnp.float32, 64, platform="gpu") == "xla"  # cuDNN: 16-bit
    assert resolve_attention("auto", jnp.bfloat16, 60, platform="gpu") == "xla"  # not x8
    assert resolve_attention("auto", jnp.bfloat16, 256, platform="gpu") == "xla"
    for odd in ((3, 8), (8, 3)):  # jax's cuDNN path refuses odd lengths in training
        assert resolve_attention("auto", jnp.bfloat16, 64, "gpu", lengths=odd) == "xla"
    assert resolve_attention("auto", jnp.bfloat16, 64, "gpu", lengths=(6, 32)) == "cudnn"
    assert resolve_attention("auto", jnp.bfloat16, 64, platform="tpu") == "xla"
    assert resolve_attention("auto", jnp.bfloat16, 64, platform="cpu") == "xla"
    assert resolve_attention("xla", jnp.bfloat16, 64, platform="gpu") == "xla"
    assert resolve_attention("cudnn", jnp.float32, 64, platform="cpu") == "cudnn"  # as asked
    assert resolve_attention("auto", jnp.bfloat16, 64) == "xla"  # this machine: no GPU
    with target_platform("cuda"):  # an ahead-of-time compile for a GPU, traced here
        assert resolve_attention("auto", jnp.bfloat16, 64) == "cudnn"
        assert resolve_attention("auto", jnp.bfloat16, 64, platform="tpu") == "xla"
    assert resolve_attention("auto", jnp.bfloat16, 64) == "xla"
    gpu = lambda cc: type("Device", (), {"compute_capability": cc})()
    assert _cudnn_flash_device(gpu("9.0")) and _cudnn_flash_device(gpu("8.0"))
    assert not _cudnn_flash_device(gpu("7.5")) and not _cudnn_flash_device(gpu("gfx90a"))
    assert not _cudnn_flash_device(object())
    with pytest.raises(ValueError, match="attention_impl"):
        _cfg(attention_impl="flash")


def test_key_lengths_give_the_masked_attention_for_trailing_padding():
    """cuDNN reads the key-padding mask as lengths; with the padding at the end (as the row
    builders write it) that is the same attention, checked here through XLA's lengths path."""
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.normal(size=(3, 5, 2, 8)), jnp.float32) for _ in range(3))
    mask = jnp.asarray(np.arange(5)[None, :] < np.array([[5], [3], [1]]))[:, None, None, :]
    np.testing.assert_array_equal(key_lengths(mask), [5, 3, 1])
    masked = jax.nn.dot_product_attention(q, k, v, mask=mask, implementation="xla")
    by_length = jax.nn.dot_product_attention(q, k, v, key_value_seq_lengths=key_lengths(mask),
                                             implementation="xla")
    np.testing.assert_allclose(by_length, masked, atol=1e-6)
    with pytest.raises(ValueError, match="key-padding mask"):
        key_lengths(jnp.ones((3, 1, 5, 5), bool))


def test_flops_per_token_counts_dominant_matmuls():
    cfg = presets.TransformerConfig(**presets.get_preset("base"))
    f = presets.flops_per_token(cfg, 32, 6)
    # Roughly 6 * non-embedding params per token plus the logits projection.
    n_body = presets.param_count(cfg) - cfg.vocab_size * cfg.d_model
    assert 6 * n_body * 0.5 < f < 6 * n_body * 3


def test_padded_vocabulary_gives_the_unpadded_models_logits(setup):
    cfg, model, params, apply, enc, dec = setup  # vocab 300, no padding
    padded_cfg = presets.TransformerConfig(**{**cfg.__dict__, "vocab_multiple": 128})
    assert padded_cfg.padded_vocab_size == 384 and cfg.padded_vocab_size == 300
    padded = build_model(padded_cfg)
    shapes = jax.eval_shape(padded.init, jax.random.key(0), enc, dec)["params"]
    assert nn.unbox(shapes)["embed"]["embedding"].shape == (384, cfg.d_model)
    extra = np.random.default_rng(1).normal(size=(84, cfg.d_model)).astype(np.float32)
    table = np.concatenate([np.asarray(params["embed"]["embedding"]), extra])
    padded_params = {**params, "embed": {"embedding": jnp.asarray(table)}}
    got = padded.apply({"params": padded_params}, enc, dec)
    assert got.shape == (B, T, 300)  # cut back: no padding logit reaches a softmax
    np.testing.assert_allclose(got, apply(params, enc, dec), rtol=1e-5, atol=1e-5)
    assert presets.param_count(padded_cfg) - presets.param_count(cfg) == 84 * cfg.d_model
    with pytest.raises(ValueError, match="vocab_multiple must be positive"):
        presets.TransformerConfig(**{**cfg.__dict__, "vocab_multiple": 0})


def test_a_dtype_that_is_not_one_is_refused_by_name():
    base = presets.get_preset("tiny")
    for key in ("dtype", "param_dtype"):
        with pytest.raises(ValueError, match=f"model.{key} must be one of .*got 'float9'"):
            presets.TransformerConfig(**{**base, key: "float9"})
