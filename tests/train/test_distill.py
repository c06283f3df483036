"""Self-distillation step: SID positions from the targets, one normalisation with decoding, the
teacher under stop-gradient, EMA teacher, FGM, sharded == single device, resume == straight."""

import flax.linen as nn
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from train_helpers import assert_resume_equals_uninterrupted, train_on_mesh
from configs import distill as distill_configs
from onesearch_jax.sid.vocab import SidVocab
from onesearch_jax.model.sid_levels import level_ranges, sid_positions
from onesearch_jax.model.transformer import EncoderDecoder, build_model, make_cached_logits_fn
from onesearch_jax import sharding
from onesearch_jax.pipeline import stages
from onesearch_jax.train import distill, distill_losses, fgm
from onesearch_jax.train import step as step_lib
from onesearch_jax.train.losses import weighted_cross_entropy
from onesearch_jax.train.train_state import create_train_state, params_ema, setup_train_state

TEXT = 20                      # text tokens 0..19; SID levels: 20..27, 28..33, 34..37
OFFSETS, SIZES = (20, 28, 34), (8, 6, 4)
SID_VOCAB = SidVocab(20, SIZES)  # text ids 0..19, then the levels at OFFSETS
RANGES = level_ranges(OFFSETS, SIZES)
VOCAB = TEXT + sum(SIZES)


def _config(**distill_overrides):
    c = distill_configs.get_config("tiny:sd")
    c.model.update(vocab_size=VOCAB, d_model=32, num_heads=2, mlp_dim=64, enc_layers=1,
                   dec_layers=1, dropout_rate=0.0)
    c.train.update(steps=4, warmup=1, lr=1e-2, batch_size=8, log_every=1, checkpoint_every=2,
                   keep=3)
    c.distill.update(alpha_kl=1.0, **distill_overrides)
    return c


def _batch(i, text_first=False):
    """8 rows: SID targets at positions 0..2 (or after 2 text tokens), then padding."""
    rng = np.random.default_rng(i)
    n, t = 8, 6
    sid = np.stack([rng.integers(o, o + s, n) for o, s in zip(OFFSETS, SIZES)], 1)
    tgt = np.zeros((n, t), np.int32)
    start = 2 if text_first else 0
    if text_first:
        tgt[:, :2] = rng.integers(3, TEXT, (n, 2))
    tgt[:, start:start + 3] = sid
    w = (tgt > 0).astype(np.float32)
    enc = rng.integers(3, TEXT, (n, 7)).astype(np.int32)
    teacher = np.concatenate([enc, rng.integers(3, TEXT, (n, 3)).astype(np.int32)], 1)
    enc = np.pad(enc, ((0, 0), (0, 3)))
    mask = np.array([1, 1, 1, 0, 1, 1, 0, 1], np.float32)
    teacher[mask == 0] = enc[mask == 0]
    return dict(enc_tokens=enc, dec_inputs=np.concatenate([np.ones((n, 1), np.int32),
                                                           tgt[:, :-1]], 1),
                dec_targets=tgt, dec_weights=w, teacher_enc_tokens=teacher, teacher_mask=mask)


def _model_and_params(c):
    model = build_model(c.model)
    params = nn.unbox(model.init(jax.random.key(0), jnp.ones((1, 1), jnp.int32),
                                 jnp.ones((1, 1), jnp.int32))["params"])
    return model, params


def test_sid_positions_come_from_the_targets_not_the_weights():
    b = _batch(0, text_first=True)
    positions, codes, found = sid_positions(jnp.asarray(b["dec_targets"]), RANGES)
    np.testing.assert_array_equal(positions, np.tile([2, 3, 4], (8, 1)))
    np.testing.assert_array_equal(codes, b["dec_targets"][:, 2:5] - np.array(OFFSETS))
    assert (found == 1).all()
    # Weights cover the text tokens too: they cannot tell where the SID is.
    assert (b["dec_weights"][:, :2] > 0).all()
    text_only = jnp.asarray([[5, 6, 7, 0, 0, 0]])
    assert (sid_positions(text_only, RANGES)[2] == 0).all()
    ref, ref_ranges = distill.kl_positions(positions, RANGES, b["dec_targets"].shape[1], VOCAB,
                                           "reference_shift")
    np.testing.assert_array_equal(ref, np.tile([3, 4, 5], (8, 1)))
    assert ref_ranges == ((0, VOCAB),) * 3


def test_level_log_probs_match_full_logits_sliced_and_the_decode_step():
    c = _config()
    model, params = _model_and_params(c)
    b = _batch(1, text_first=True)
    positions, _, _ = sid_positions(jnp.asarray(b["dec_targets"]), RANGES)
    logits, lp = model.apply({"params": params}, b["enc_tokens"], b["dec_inputs"], positions,
                             RANGES, method=EncoderDecoder.logits_and_sid_log_probs)
    assert lp.dtype == jnp.float32 and lp.shape == (8, 3, max(SIZES))
    for l, (start, size) in enumerate(RANGES):
        want = jax.nn.log_softmax(logits[np.arange(8), positions[:, l], start:start + size], -1)
        np.testing.assert_allclose(lp[:, l, :size], want, atol=1e-5)
        assert (lp[:, l, size:] <= -1e8).all()  # padding codes have probability 0
    # Decoding's per-step level logits (the KV-cache path) give the same distributions.
    b0 = _batch(1)
    enc_out, enc_mask = model.apply({"params": params}, b0["enc_tokens"],
                                    method=EncoderDecoder.encode)
    fn, cache = make_cached_logits_fn(model, params, enc_out, enc_mask, RANGES)
    pos0, _, _ = sid_positions(jnp.asarray(b0["dec_targets"]), RANGES)
    lp0 = model.apply({"params": params}, b0["enc_tokens"], b0["dec_inputs"], pos0, RANGES,
                      method=EncoderDecoder.sid_log_probs)
    for l, (_, size) in enumerate(RANGES):
        step_logits, cache = fn(cache, jnp.asarray(b0["dec_inputs"]), l)
        np.testing.assert_allclose(jax.nn.log_softmax(step_logits, -1), lp0[:, l, :size],
                                   atol=1e-5)


def test_kl_is_taken_on_keyword_rows_at_sid_positions_with_the_teacher_under_stop_gradient():
    c = _config()
    model, params = _model_and_params(c)
    b = {k: jnp.asarray(v) for k, v in _batch(2).items()}
    settings = distill.distill_settings(c)
    loss_fn = distill.distill_loss_fn(model, RANGES, settings)
    (loss, m), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, b, jax.random.key(0))

    positions, _, found = sid_positions(b["dec_targets"], RANGES)
    t_lp = model.apply({"params": params}, b["teacher_enc_tokens"], b["dec_inputs"], positions,
                       RANGES, method=EncoderDecoder.sid_log_probs)
    t_lp = np.asarray(t_lp)  # a constant: no path back to the parameters
    mask = np.asarray(found) * np.asarray(b["teacher_mask"])[:, None]

    def by_hand(p):
        logits, s_lp = model.apply({"params": p}, b["enc_tokens"], b["dec_inputs"], positions,
                                   RANGES, method=EncoderDecoder.logits_and_sid_log_probs)
        ce, _ = weighted_cross_entropy(logits, b["dec_targets"], b["dec_weights"])
        return ce + distill_losses.tempered_kl(t_lp, s_lp, mask)

    want, want_grads = jax.value_and_grad(by_hand)(params)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    for g, h in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads)):
        np.testing.assert_allclose(g, h, rtol=1e-4, atol=1e-6)
    # The KL by hand: rows 3 and 6 (no keywords) do not count.
    s_lp = np.asarray(model.apply({"params": params}, b["enc_tokens"], b["dec_inputs"], positions,
                                  RANGES, method=EncoderDecoder.sid_log_probs))
    pt = np.exp(t_lp)
    kl_rows = np.sum(np.where(pt > 0, pt * (t_lp - s_lp), 0.0), -1)
    np.testing.assert_allclose(m["kl"], (kl_rows * mask).sum() / mask.sum(), rtol=1e-5)
    assert float(m["kl_positions"]) == 18.0  # 6 keyword rows x 3 SID levels


def test_kl_levels_keeps_the_first_levels_only():
    np.testing.assert_array_equal(distill.first_levels(3, 0), [1, 1, 1])
    np.testing.assert_array_equal(distill.first_levels(3, 2), [1, 1, 0])
    np.testing.assert_array_equal(distill.first_levels(3, 5), [1, 1, 1])
    c = _config()
    model, params = _model_and_params(c)
    b = {k: jnp.asarray(v) for k, v in _batch(2).items()}
    positions, _, found = sid_positions(b["dec_targets"], RANGES)
    t_lp, s_lp = (np.asarray(model.apply({"params": params}, b[k], b["dec_inputs"], positions,
                                         RANGES, method=EncoderDecoder.sid_log_probs))
                  for k in ("teacher_enc_tokens", "enc_tokens"))
    mask = np.asarray(found) * np.asarray(b["teacher_mask"])[:, None] * np.array([1, 0, 0])
    kl_rows = np.sum(np.where(t_lp > -1e8, np.exp(t_lp) * (t_lp - s_lp), 0.0), -1)
    _, m = distill.distill_loss(params, b, jax.random.key(0), model=model, ranges=RANGES,
                                settings=distill.distill_settings(_config(kl_levels=1)))
    np.testing.assert_allclose(m["kl"], (kl_rows * mask).sum() / mask.sum(), rtol=1e-5)
    assert float(m["kl_positions"]) == 6.0  # 6 keyword rows x the first level
    with pytest.raises(ValueError, match="kl_levels"):
        distill.distill_settings(_config(kl_levels=-1))
    negative = _config()
    negative.distill.alpha_kl = -1.0
    with pytest.raises(ValueError, match="distill.alpha_kl must be >= 0, got -1"):
        distill.distill_settings(negative)
    with pytest.raises(ValueError, match="distill.tau must be > 0"):
        distill.distill_settings(_config(tau=0.0))


def test_identical_inputs_give_zero_kl_and_teacher_ce_weight_trains_the_teacher_path():
    c = _config()
    model, params = _model_and_params(c)
    b = {k: jnp.asarray(v) for k, v in _batch(3).items()}
    same = dict(b, teacher_enc_tokens=b["enc_tokens"])
    _, m = distill.distill_loss(params, same, jax.random.key(0), model=model, ranges=RANGES,
                                settings=distill.distill_settings(c))
    assert abs(float(m["kl"])) < 1e-6
    c2 = _config(teacher_ce_weight=1.0)
    _, m2 = distill.distill_loss(params, b, jax.random.key(0), model=model, ranges=RANGES,
                                 settings=distill.distill_settings(c2))
    _, m1 = distill.distill_loss(params, b, jax.random.key(0), model=model, ranges=RANGES,
                                 settings=distill.distill_settings(c))
    np.testing.assert_allclose(m2["loss"], m1["loss"] + m1["teacher_ce"], rtol=1e-5)
    # teacher_input='student': the teacher reads the student's input on the same rows, so the
    # KL is that of identical inputs (0 without dropout), over the same positions.
    _, own = distill.distill_loss(params, b, jax.random.key(0), model=model, ranges=RANGES,
                                  settings=distill.distill_settings(_config(
                                      teacher_input="student")))
    assert float(m1["kl"]) > 1e-4 and abs(float(own["kl"])) < 1e-6
    assert float(own["kl_positions"]) == float(m1["kl_positions"])
    with pytest.raises(ValueError, match="teacher_input='query'; valid"):
        distill.distill_settings(_config(teacher_input="query"))


def test_sd_sweep_rungs_change_one_thing_of_sd_each():
    base = distill_configs.get_config("small:sd").to_dict()
    for rung, changes in distill_configs.SD_SWEEP.items():
        c = distill_configs.get_config(f"small:{rung}")
        distill.distill_settings(c)  # a valid setting
        assert distill_configs.PARENTS[rung] == "sd"
        got = c.to_dict()
        for (section, key), value in changes.items():
            assert got[section][key] == value != base[section][key]
            got[section][key] = base[section][key]
        got["rung"] = "sd"
        assert got == base
    # A control is its sweep rung without the keywords in the teacher's input.
    for rung in distill_configs.SD_CONTROLS:
        parent = distill_configs.PARENTS[rung]
        want = distill_configs.get_config(f"small:{parent}").to_dict()
        want["distill"]["teacher_input"], want["rung"] = "student", rung
        assert parent in distill_configs.SD_SWEEP
        assert distill_configs.get_config(f"small:{rung}").to_dict() == want
    assert distill_configs.PARENTS["sd_self_kw5"] == "sd_kw5"


def test_bad_settings_are_refused_naming_the_key():
    c = _config()
    c.distill.alignment = "sideways"
    with pytest.raises(ValueError, match="alignment"):
        distill.distill_settings(c)
    c = _config()
    c.distill.teacher = "ema"
    with pytest.raises(ValueError, match="ema_decay"):
        distill.distill_settings(c)
    with pytest.raises(ValueError, match="unknown variant 'sdd'.*valid"):
        distill_configs.get_config("tiny:sdd")
    with pytest.raises(ValueError, match="unknown training stage 'grpoo'.*distill"):
        stages.get_stage("grpoo")
    with pytest.raises(ValueError, match="teacher_enc_tokens"):
        distill.check_distill_batch({k: v for k, v in _batch(0).items()
                                     if k != "teacher_enc_tokens"})


def _train(mesh, c, batches):
    return train_on_mesh(mesh, c, batches, distill.make_distill_step(SID_VOCAB))


def test_sharded_distill_step_matches_single_device():
    c = _config(rdrop_alpha=0.5)
    c.model.dropout_rate = 0.1  # dropout masks must agree across meshes too
    batches = [_batch(4), _batch(5), _batch(4)]
    state8, losses8 = _train(sharding.make_mesh((2, 2, 2)), c, batches)
    state1, losses1 = _train(sharding.make_mesh((1, 1, 1), devices=jax.devices()[:1]), c,
                             batches)
    np.testing.assert_allclose(losses8, losses1, rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(state8.params, state1.params, rtol=1e-5, atol=1e-5)


def test_ema_teacher_tracks_the_parameters_with_decay():
    c = _config(teacher="ema")
    c.train.ema_decay = 0.9
    mesh = sharding.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    model = build_model(c.model)
    setup = setup_train_state(model, c, mesh)
    state = create_train_state(setup, c.train.seed)
    step = distill.make_distill_step(SID_VOCAB)(model, c, setup)
    history = [jax.device_get(state.params)]
    for i in range(2):
        state, _ = step(state, sharding.shard_batch(_batch(i), mesh, setup.rules),
                        jax.random.key(1))
        history.append(jax.device_get(state.params))
    want = jax.tree.map(lambda p0, p1, p2: 0.9 * (0.9 * p0 + 0.1 * p1) + 0.1 * p2, *history)
    for a, b in zip(jax.tree.leaves(params_ema(state.opt_state)), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-5, atol=1e-6)


def test_fgm_adds_the_gradient_of_the_loss_at_the_attacked_embedding():
    c = _config()
    model, params = _model_and_params(c)
    b = {k: jnp.asarray(v) for k, v in _batch(6).items()}
    loss_fn = distill.distill_loss_fn(model, RANGES, distill.distill_settings(c))
    rng = jax.random.key(3)
    g = jax.grad(lambda p: loss_fn(p, b, jax.random.fold_in(rng, 0))[0])(params)
    r = fgm.fgm_perturbation(g["embed"]["embedding"], 0.6)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(r)), 0.6, rtol=1e-5)
    attacked = {**params, "embed": {"embedding": params["embed"]["embedding"] + r}}
    adv = loss_fn(attacked, b, jax.random.fold_in(rng, 0))[0]

    class State:  # the minimum of a TrainState train_step reads
        step = 0

        def __init__(self, p):
            self.params = p

        def apply_gradients(self, grads):
            return grads

    grads, m = step_lib.train_step(State(params), b, rng, loss_fn=loss_fn, fgm_epsilon=0.6)
    np.testing.assert_allclose(m["fgm_loss"], adv, rtol=1e-5)
    g_adv = jax.grad(lambda p: loss_fn(p, b, jax.random.fold_in(rng, 0))[0])(attacked)
    for x, y, z in zip(jax.tree.leaves(grads), jax.tree.leaves(g), jax.tree.leaves(g_adv)):
        np.testing.assert_allclose(x, y + z, rtol=1e-4, atol=1e-6)


def test_distill_resume_equals_uninterrupted(tmp_path, preempting_batches):
    c = _config(rdrop_alpha=0.5)
    c.model.dropout_rate = 0.1
    model = build_model(c.model)
    assert_resume_equals_uninterrupted(tmp_path, c, model, _batch, preempting_batches,
                                       distill.make_distill_step(SID_VOCAB),
                                       distill.check_distill_batch)
