"""The frozen_minilm model (cached MiniLM states + adapter + decoder) through the real stages:
sharded == one device, resume == uninterrupted, the distillation KL on the same positions with
the teacher's own states, the EMA teacher starting from the initialised weights, and serving."""
import io

import flax.linen as nn
import chex
import jax
import numpy as np
import pytest

from train_helpers import assert_resume_equals_uninterrupted, train_on_mesh
from configs import distill as distill_configs
from onesearch_jax import sharding
from onesearch_jax.decode.retrieve import SidRetriever
from onesearch_jax.model.sid_levels import level_ranges, sid_positions
from onesearch_jax.model.transformer import EncoderDecoder, build_model, init_params
from onesearch_jax.sid.trie import SidTrie
from onesearch_jax.sid.vocab import SidVocab
from onesearch_jax.train import distill
from onesearch_jax.train.loop import train_loop
from onesearch_jax.train.train_state import params_ema

TEXT = 20                      # text tokens 0..19; SID levels: 20..27, 28..33, 34..37
OFFSETS, SIZES = (20, 28, 34), (8, 6, 4)
SID_VOCAB = SidVocab(20, SIZES)  # text ids 0..19, then the levels at OFFSETS
RANGES = level_ranges(OFFSETS, SIZES)
VOCAB = TEXT + sum(SIZES)
MEM = 10


def _config(**distill_overrides):
    c = distill_configs.get_config("tiny:sd")
    c.model.update(vocab_size=VOCAB, d_model=32, num_heads=2, mlp_dim=64, enc_layers=1,
                   dec_layers=1, dropout_rate=0.1, encoder="frozen_minilm")
    c.train.update(steps=4, warmup=1, lr=1e-2, batch_size=8, log_every=1, checkpoint_every=2,
                   keep=3)
    c.distill.update(alpha_kl=1.0, **distill_overrides)
    return c


def _batch(i):
    """8 rows of memory tokens with states (text slots) and SID targets; the teacher's memory
    has 3 more text slots (its keywords) on the rows with teacher_mask 1."""
    rng = np.random.default_rng(i)
    n = 8
    sid = np.stack([rng.integers(o, o + s, n) for o, s in zip(OFFSETS, SIZES)], 1)
    tgt = np.zeros((n, 5), np.int32)
    tgt[:, :3] = sid
    enc = np.zeros((n, MEM), np.int32)
    enc[:, 0] = 6
    enc[:, 1:6] = 5  # TEXT_SLOT_ID
    states = np.zeros((n, MEM, 384), np.float32)
    states[:, 1:6] = rng.normal(size=(n, 5, 384))
    mask = np.array([1, 1, 1, 0, 1, 1, 0, 1], np.float32)
    t_enc, t_states = enc.copy(), states.copy()
    t_enc[mask > 0, 6] = 7
    t_enc[mask > 0, 7:10] = 5
    t_states[mask > 0, 7:10] = rng.normal(size=(int(mask.sum()), 3, 384))
    return dict(enc_tokens=enc, enc_states=states,
                dec_inputs=np.concatenate([np.ones((n, 1), np.int32), tgt[:, :-1]], 1),
                dec_targets=tgt, dec_weights=(tgt > 0).astype(np.float32),
                teacher_enc_tokens=t_enc, teacher_enc_states=t_states, teacher_mask=mask)


def _train(mesh, c, batches):
    return train_on_mesh(mesh, c, batches, distill.make_distill_step(SID_VOCAB))


def test_frozen_encoder_step_on_a_2x2x2_mesh_equals_one_device():
    c = _config(rdrop_alpha=0.5)
    batches = [_batch(4), _batch(5), _batch(4)]
    state8, losses8 = _train(sharding.make_mesh((2, 2, 2)), c, batches)
    state1, losses1 = _train(sharding.make_mesh((1, 1, 1), devices=jax.devices()[:1]), c,
                             batches)
    assert "state_proj" in state8.params and "encoder" not in state8.params
    np.testing.assert_allclose(losses8, losses1, rtol=1e-5, atol=1e-5)
    assert losses8[2] < losses8[0]
    chex.assert_trees_all_close(state8.params, state1.params, rtol=1e-5, atol=1e-5)


def test_frozen_encoder_resume_equals_uninterrupted(tmp_path, preempting_batches):
    c = _config()
    model = build_model(c.model)
    assert_resume_equals_uninterrupted(tmp_path, c, model, _batch, preempting_batches,
                                       distill.make_distill_step(SID_VOCAB),
                                       distill.check_distill_batch)


def test_distill_kl_positions_are_unchanged_and_the_teacher_reads_its_own_states():
    c = _config()
    c.model.dropout_rate = 0.0
    model = build_model(c.model)
    params = nn.unbox(init_params(model, jax.random.key(0)))
    b = _batch(2)
    settings = distill.distill_settings(c)
    _, m = distill.distill_loss(params, b, jax.random.key(0), model=model, ranges=RANGES,
                                settings=settings)
    assert float(m["kl_positions"]) == 18.0  # 6 keyword rows x 3 SID levels, as before
    positions, _, found = sid_positions(b["dec_targets"], RANGES)
    np.testing.assert_array_equal(positions, np.tile([0, 1, 2], (8, 1)))
    t_lp = model.apply({"params": params}, b["teacher_enc_tokens"], b["dec_inputs"], positions,
                       RANGES, enc_states=b["teacher_enc_states"],
                       method=EncoderDecoder.sid_log_probs)
    s_lp = model.apply({"params": params}, b["enc_tokens"], b["dec_inputs"], positions, RANGES,
                       enc_states=b["enc_states"], method=EncoderDecoder.sid_log_probs)
    mask = np.asarray(found) * b["teacher_mask"][:, None]
    pt = np.exp(np.asarray(t_lp))
    kl_rows = np.sum(np.where(pt > 0, pt * (np.asarray(t_lp) - np.asarray(s_lp)), 0.0), -1)
    np.testing.assert_allclose(m["kl"], (kl_rows * mask).sum() / mask.sum(), rtol=1e-5)
    assert float(m["kl"]) > 1e-4
    # The same tokens with the student's states: the teacher sees nothing more, KL 0.
    same = dict(b, teacher_enc_tokens=b["enc_tokens"], teacher_enc_states=b["enc_states"])
    _, m0 = distill.distill_loss(params, same, jax.random.key(0), model=model, ranges=RANGES,
                                 settings=settings)
    assert abs(float(m0["kl"])) < 1e-6


def test_missing_states_are_refused():
    c = _config()
    model = build_model(c.model)
    params = nn.unbox(init_params(model, jax.random.key(0)))
    b = _batch(0)
    with pytest.raises(ValueError, match="frozen_minilm encoder reads enc_states"):
        model.apply({"params": params}, b["enc_tokens"], b["dec_inputs"])
    with pytest.raises(ValueError, match="served with its EncoderMemory"):
        SidRetriever(model, params, SidVocab(TEXT, SIZES),
                     SidTrie.build(np.zeros((1, 3), np.int32), SIZES), beam_size=2)


def test_the_ema_teacher_starts_from_the_initialised_weights(tmp_path):
    c = _config(teacher="ema")
    c.train.update(ema_decay=0.9, steps=1)
    model = build_model(c.model)
    loaded = {}

    def init(params):  # stands for the pretrained / codebook / restored weights
        loaded["params"] = jax.tree.map(lambda p: np.asarray(p) + 1.0, params)
        return loaded["params"]

    seen = []

    def make_step(model, config, setup):
        step = distill.make_distill_step(SID_VOCAB)(model, config, setup)

        def wrapped(state, batch, rng):
            seen.append(jax.device_get(params_ema(state.opt_state)))
            return step(state, batch, rng)
        return wrapped

    train_loop(c, str(tmp_path), model, lambda pos, rows: iter([_batch(0)]),
               stream=io.StringIO(), mesh=sharding.make_mesh((1, 1, 1), devices=jax.devices()[:1]),
               make_step=make_step, init_params=init)
    for a, b in zip(jax.tree.leaves(seen[0]), jax.tree.leaves(loaded["params"])):
        np.testing.assert_array_equal(np.asarray(a), b)


def test_empty_memory_slots_change_nothing_so_a_stage_may_run_narrower_batches():
    """data.mem_width='stage' feeds batches only as wide as their longest row: the loss and the
    gradients of a batch padded with 6 more empty slots (student and teacher) are the same."""
    c = _config(rdrop_alpha=0.5)
    c.model.dropout_rate = 0.0
    model = build_model(c.model)
    params = nn.unbox(init_params(model, jax.random.key(0)))
    narrow = _batch(3)
    wide = dict(narrow)
    for key in ("enc_tokens", "teacher_enc_tokens", "enc_states", "teacher_enc_states"):
        pad = [(0, 0), (0, 6)] + [(0, 0)] * (narrow[key].ndim - 2)
        wide[key] = np.pad(narrow[key], pad)
    assert wide["enc_tokens"].shape == (8, MEM + 6)
    loss = jax.value_and_grad(distill.distill_loss, has_aux=True)
    kw = dict(model=model, ranges=RANGES, settings=distill.distill_settings(c))
    (l_narrow, m_narrow), g_narrow = loss(params, narrow, jax.random.key(1), **kw)
    (l_wide, m_wide), g_wide = loss(params, wide, jax.random.key(1), **kw)
    np.testing.assert_allclose(l_wide, l_narrow, rtol=1e-5)
    np.testing.assert_allclose(m_wide["kl"], m_narrow["kl"], rtol=1e-5)
    assert float(m_narrow["kl"]) > 1e-4
    chex.assert_trees_all_close(g_wide, g_narrow, rtol=1e-4, atol=1e-6)
