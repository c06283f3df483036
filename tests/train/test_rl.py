"""RL stages: rollouts, the ratio at the first update, sharded == single device, resume ==
uninterrupted, the logged reward and bad settings."""
import functools
import os
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from train_helpers import train_on_mesh
from configs import dpo as dpo_configs
from configs import tpma as tpma_configs
from onesearch_jax.sid.vocab import SidVocab
from onesearch_jax.data.text_tokenizer import BOS_ID
from onesearch_jax.decode.sampling import sample_sids
from onesearch_jax.model.sid_levels import level_ranges
from onesearch_jax.model.transformer import EncoderDecoder, build_model, make_cached_logits_fn
from onesearch_jax.sid.trie import SidTrie
from onesearch_jax.train import rewards as rewards_lib
from onesearch_jax import sharding
from onesearch_jax.pipeline import rl_run, sft_run, stages
from onesearch_jax.train import rl, rollout
from onesearch_jax.train.loop import train_loop
from onesearch_jax.train.train_state import create_train_state, setup_train_state

TEXT = 20                      # text tokens 0..19; SID levels: 20..27, 28..33, 34..37
OFFSETS, SIZES = (20, 28, 34), (8, 6, 4)
SID_VOCAB = SidVocab(20, SIZES)  # text ids 0..19, then the levels at OFFSETS
RANGES = level_ranges(OFFSETS, SIZES)
ITEM_CODES = np.random.default_rng(0).integers(0, SIZES, (24, 3))
TRIE = SidTrie.build(ITEM_CODES, SIZES)
B, G = 8, 4


def _config(stage="grpo", **rl_overrides):
    c = (tpma_configs.get_config("tiny") if stage == "grpo" else dpo_configs.get_config("tiny"))
    c.model.update(vocab_size=TEXT + sum(SIZES), d_model=32, num_heads=2, mlp_dim=64,
                   enc_layers=1, dec_layers=1, dropout_rate=0.0)
    c.train.update(steps=4, warmup=1, lr=1e-2, batch_size=B, log_every=1, checkpoint_every=2,
                   keep=3)
    c.rl.update(group_size=G, **rl_overrides)
    return c


def _prompts(i):
    rng = np.random.default_rng(100 + i)
    targets = ITEM_CODES[rng.integers(0, len(ITEM_CODES), (B, 2))].astype(np.int32)
    dec = np.concatenate([targets[:, 0] + np.array(OFFSETS), np.zeros((B, 1), int)], 1)
    return dict(enc_tokens=rng.integers(3, TEXT, (B, 7)).astype(np.int32), targets=targets,
                target_mask=np.array([[1, 1]] * (B // 2) + [[1, 0]] * (B // 2), np.float32),
                query_id=np.arange(B, dtype=np.int32) + i, user_id=np.zeros(B, np.int32),
                sft_dec_inputs=np.concatenate([np.ones((B, 1), int), dec[:, :-1]], 1).astype(
                    np.int32),
                sft_dec_targets=dec.astype(np.int32),
                sft_dec_weights=(dec > 0).astype(np.float32))


def _fake_rewards(query_ids, user_ids, items):
    """A deterministic stand-in for LoggedRewards: item index parity and size."""
    items = np.asarray(items)
    rel = np.where(items >= 0, items % 4, 0).astype(np.float32)
    zeros = np.zeros(items.shape, np.float32)
    return {"rel": rel, "ctr": zeros, "co": zeros, "item": rel}


def _setup(c, mesh):
    model = build_model(c.model)
    setup = setup_train_state(model, c, mesh)
    return model, setup, create_train_state(setup, c.train.seed)


def _one_device():
    return sharding.make_mesh((1, 1, 1), devices=jax.devices()[:1])


@functools.lru_cache(maxsize=None)
def _start():
    """(model, initial params, one compiled rollout): shared so each test compiles less."""
    c = _config()
    model, _, state = _setup(c, _one_device())
    fn = jax.jit(rollout.make_rollout_fn(model, SID_VOCAB, group_size=G,
                                         with_reference=True))
    return model, state.params, fn


@functools.lru_cache(maxsize=None)
def _rollout_batch(i):
    """Prompts i with G constrained samples of the initial policy and their fake rewards."""
    _, params, fn = _start()
    p = _prompts(i)
    out = jax.device_get(fn(params, params, params, TRIE, jnp.asarray(p["enc_tokens"]),
                            jax.random.key(i)))
    return rl.attach_rewards(p, out, _fake_rewards(p["query_id"], p["user_id"], out["items"]))


def _sample(model, params, enc, temperature, key):
    """The sampler itself on the KV-cached decoder (what the rollout draws with)."""
    enc_out, mask = model.apply({"params": params}, enc, method=EncoderDecoder.encode)
    logits_fn, cache = make_cached_logits_fn(model, params, enc_out, mask, RANGES)
    return jax.jit(lambda c, k: sample_sids(
        logits_fn, c, k, batch_size=B, group_size=G, temperature=temperature, bos_id=BOS_ID,
        level_offsets=OFFSETS, level_sizes=SIZES, trie=TRIE, level_logits=True))(cache, key)


def test_constrained_rollouts_are_real_items_and_logprobs_match_the_sampler():
    model, params, _ = _start()
    batch = _rollout_batch(0)
    assert batch["codes"].shape == (B, G, 3) and batch["valid"].all()
    for code_row, item_row in zip(batch["codes"].reshape(-1, 3), batch["items"].reshape(-1)):
        np.testing.assert_array_equal(ITEM_CODES[item_row], code_row)
    # The sampler's own log-probs come from the KV-cached decode path; the rollout recomputes
    # those of the distribution it drew from (inside the trie) teacher-forced.
    enc = jnp.asarray(batch["enc_tokens"])
    s = _sample(model, params, enc, 1.0, jax.random.key(0))
    np.testing.assert_array_equal(s.codes, batch["codes"])  # the same draw: same key, logits
    np.testing.assert_allclose(s.draw_logprobs, batch["old_logp"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batch["ref_logp"], batch["old_logp"], rtol=0, atol=0)
    assert batch["allowed"].shape == (B, G, 3, max(SIZES))
    # policy_logp="model": the plain model's log-probs (T = 1, whole level), as before.
    plain = jax.jit(rollout.make_rollout_fn(model, SID_VOCAB, group_size=G, policy_logp="model"))
    out = jax.device_get(plain(params, params, params, TRIE, enc, jax.random.key(0)))
    assert "allowed" not in out
    np.testing.assert_array_equal(out["codes"], batch["codes"])
    np.testing.assert_allclose(s.token_logprobs, out["old_logp"], rtol=1e-5, atol=1e-5)
    assert np.all(out["old_logp"] <= batch["old_logp"] + 1e-6)  # the mask only adds mass


def test_tempered_rollout_logprobs_are_the_tempered_draws():
    model, params, _ = _start()
    p = _prompts(1)
    fn = jax.jit(rollout.make_rollout_fn(model, SID_VOCAB, group_size=G, temperature=0.5))
    out = jax.device_get(fn(params, params, params, TRIE, jnp.asarray(p["enc_tokens"]),
                            jax.random.key(3)))
    s = _sample(model, params, jnp.asarray(p["enc_tokens"]), 0.5, jax.random.key(3))
    np.testing.assert_array_equal(s.codes, out["codes"])
    np.testing.assert_allclose(s.draw_logprobs, out["old_logp"], rtol=1e-5, atol=1e-5)


def test_policy_log_probs_by_hand():
    lp = jnp.log(jnp.array([[[0.5, 0.25, 0.25]]]))  # one position, three codes
    allowed = jnp.array([[[True, False, True]]])
    # Inside the mask: 0.5 / 0.75 and 0.25 / 0.75.
    np.testing.assert_allclose(np.exp(rollout.policy_log_probs(lp, allowed))[0, 0],
                               [2 / 3, 0, 1 / 3], atol=1e-6)
    # T = 0.5 squares the probabilities before renormalising: .25, .0625, .0625 over .375.
    np.testing.assert_allclose(np.exp(rollout.policy_log_probs(lp, None, 0.5))[0, 0],
                               [2 / 3, 1 / 6, 1 / 6], atol=1e-6)
    # A dead prefix (nothing allowed) keeps the unmasked distribution.
    dead = jnp.zeros_like(allowed)
    np.testing.assert_allclose(np.exp(rollout.policy_log_probs(lp, dead))[0, 0],
                               [0.5, 0.25, 0.25], atol=1e-6)
    assert rollout.sampling_distribution("beam", 0.7, "sampled") == (True, 1.0)
    assert rollout.sampling_distribution("free", 0.7, "sampled") == (False, 0.7)
    assert rollout.sampling_distribution("constrained", 0.0, "sampled") == (True, 1.0)
    assert rollout.sampling_distribution("constrained", 0.7, "model") == (False, 1.0)
    with pytest.raises(ValueError, match="policy_logp"):
        rollout.sampling_distribution("constrained", 1.0, "tempered")


def test_ratio_is_one_at_the_first_update_and_the_gradients_follow_the_reward():
    model, params, _ = _start()
    batch = _rollout_batch(0)
    rl.check_rl_batch(batch)
    jb = {k: jnp.asarray(v) for k, v in batch.items()}
    c = _config(advantage="grpo", sft_weight=0.0)
    loss_fn = jax.jit(functools.partial(rl.grpo_loss, model=model, ranges=RANGES,
                                        settings=rl.rl_settings(c, "grpo")))
    (_, m), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, jb, jax.random.key(0))
    assert float(m["ratio_max_abs_dev"]) < 1e-6
    # A small step along the policy gradient raises the log-prob of above-average samples.
    logp = jax.jit(lambda p: rollout.group_sid_log_probs(model, p, jb["enc_tokens"],
                                                         jb["codes"], RANGES).sum(-1))
    moved = np.asarray(logp(jax.tree.map(lambda p, g: p - 1e-3 * g, params, grads))
                       - logp(params))
    r = batch["item_reward"]
    z = (r - r.mean(1, keepdims=True)) / (r.std(1, ddof=1, keepdims=True) + 1e-8)
    assert np.corrcoef(moved.ravel(), z.ravel())[0, 1] > 0.5
    # DPO: at the reference every margin is 0; its gradient favours each row's best sample.
    dpo_fn = functools.partial(rl.dpo_loss, model=model, ranges=RANGES,
                               settings=rl.rl_settings(_config("dpo"), "dpo"))
    (dloss, dm), dgrads = jax.value_and_grad(jax.jit(dpo_fn), has_aux=True)(
        params, jb, jax.random.key(0))
    rows = float(dm["dpo_rows"])
    assert rows > 0 and abs(float(dm["dpo_margin"])) < 1e-6
    moved = np.asarray(logp(jax.tree.map(lambda p, g: p - 1e-3 * g, params, dgrads))
                       - logp(params))
    best = r.argmax(1)
    has = (r < r.max(1, keepdims=True)).any(1)
    assert np.mean(moved[has, best[has]] > moved[has].mean(1)) >= 0.75


def _train(mesh, c, batches):
    return train_on_mesh(mesh, c, batches, rl.make_rl_step(SID_VOCAB, c.stage))


def test_sharded_rl_step_matches_single_device():
    c = _config(beta=0.04)  # the KL to the reference too
    batches = [_rollout_batch(0), _rollout_batch(1)]
    state8, losses8 = _train(sharding.make_mesh((2, 2, 2)), c, batches)
    state1, losses1 = _train(_one_device(), c, batches)
    np.testing.assert_allclose(losses8, losses1, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(state8.params), jax.tree.leaves(state1.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_rl_resume_replays_the_same_rollouts(tmp_path, preempting_batches):
    c = _config(beta=0.04)
    model = build_model(c.model)
    mesh = _one_device()
    setup = setup_train_state(model, c, mesh)
    ref = create_train_state(setup, 7).params  # a frozen reference unlike the start

    hook = rl_run.RolloutHook(model, SID_VOCAB, TRIE, _fake_rewards, setup,
                              rl.rl_settings(c, "grpo"), ref_params=ref)

    def run(workdir, factory):
        return train_loop(c, workdir, model, factory, mesh=mesh, stream=io.StringIO(),
                          make_step=rl.make_rl_step(SID_VOCAB, "grpo"),
                          check_batch=rl.check_rl_batch, rollout=hook)

    straight = run(str(tmp_path / "a"), preempting_batches(_prompts))
    first = run(str(tmp_path / "b"), preempting_batches(_prompts, sigterm_at=1))
    assert first.preempted and first.step < 4
    second = run(str(tmp_path / "b"), preempting_batches(_prompts))
    assert second.step == 4
    for a, b in zip(jax.tree.leaves(straight.state.params), jax.tree.leaves(second.state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


def test_logged_rewards_values_and_pair_lookup():
    np.testing.assert_array_equal(rewards_lib.behaviour_reward([1, 1, 0], [1, 0, 0]), [4, 3, 0])
    np.testing.assert_allclose(rewards_lib.item_reward([3, 0], [1.5, 0.2], [4, 0]),
                               [3 + 1 + 4, 0.2])
    np.testing.assert_allclose(rewards_lib.item_reward([2], [0.5], [3], (1, 2, 0.5)),
                               [2 + 1 + 1.5])
    events = dict(query_id=np.array([0, 1]), items=np.array([[5, 6, -1], [5, 7, 8]]),
                  clicks=np.array([[1, 0, 0], [0, 1, 1]]), orders=np.array([[1, 0, 0],
                                                                          [0, 0, 1]]))
    pairs = rewards_lib.LoggedPairs(events, num_items=10)
    clicked, ordered = pairs.lookup(np.array([0, 1]), np.array([[5, 6, -1], [5, 8, 7]]))
    np.testing.assert_array_equal(clicked, [[1, 0, 0], [0, 1, 1]])
    np.testing.assert_array_equal(ordered, [[1, 0, 0], [0, 1, 0]])


def test_rl_stages_and_bad_settings_are_refused_by_name():
    assert {"grpo", "dpo"} <= set(stages.STAGES)
    c = _config()
    c.rl.advantage = "ppo"
    with pytest.raises(ValueError, match="unknown advantage estimator 'ppo'"):
        rl.rl_settings(c, "grpo")
    c = _config(sampler="greedy")
    with pytest.raises(ValueError, match="rl.sampler='greedy'"):
        rl.rl_settings(c, "grpo")
    c = _config()
    c.rl.group_size = 1
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        rl.rl_settings(c, "grpo")
    c = _config()
    c.rl.w_item = -0.5  # a negative weight on R_item would reward worse items: refused
    with pytest.raises(ValueError, match="rl.w_item must be >= 0, got -0.5"):
        rl.rl_settings(c, "grpo")
    with pytest.raises(ValueError, match="unknown TPMA variant 'nogate'"):
        tpma_configs.get_config("tiny:nogate")
    c = _config()
    with pytest.raises(ValueError, match="init_workdir is empty"):
        rl_run.adopt_init_config(c, "/tmp/nowhere")
    with pytest.raises(ValueError, match="missing keys"):
        rl.check_rl_batch(_prompts(0))


def _fake_start(init, checkpoint: bool = True):
    """A starting run's workdir as the RL stages check it: a built world, SIDs, data, a trained
    config and (by default) a checkpoint folder."""
    for sub in ("world", "sids", "data") + (("checkpoints/5",) if checkpoint else ()):
        (init / sub).mkdir(parents=True)
    (init / "world" / "BUILD_DONE").write_text("")
    (init / "train_config.json").write_text("{}")
    return init


def test_a_bad_start_is_refused_before_anything_is_linked(tmp_path):
    rl_dir = tmp_path / "rl"
    no_checkpoint = _fake_start(tmp_path / "untrained", checkpoint=False)
    no_world = _fake_start(tmp_path / "real")
    (no_world / "world" / "BUILD_DONE").unlink()
    for init, message in ((tmp_path / "nope", "no such directory"),
                          (no_world, "has no built world"),
                          (no_checkpoint, "has no checkpoint: train it first")):
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            rl_run.check_init_workdir(str(init), str(rl_dir))
    assert not rl_dir.exists()


def test_a_start_changed_before_training_is_relinked(tmp_path):
    """A workdir linked to one start (whose run was then refused) follows the corrected start;
    once it has a checkpoint, another start's world is refused."""
    import json
    a, b, run = _fake_start(tmp_path / "a"), _fake_start(tmp_path / "b"), tmp_path / "rl"
    (a / "metrics.json").write_text(json.dumps({"bm25/rel_hr@10": 0.1}))
    (b / "metrics.json").write_text(json.dumps({"bm25/rel_hr@10": 0.2}))
    rl_run.link_init_world(str(a), str(run))
    rl_run.link_init_world(str(b), str(run))
    assert os.path.realpath(run / "world") == os.path.realpath(b / "world")
    assert json.loads((run / "metrics.json").read_text())["bm25/rel_hr@10"] == 0.2
    (run / "checkpoints" / "3").mkdir(parents=True)
    with pytest.raises(ValueError, match="use a new --workdir"):
        rl_run.link_init_world(str(a), str(run))


def test_rl_adopts_the_starting_runs_model_and_serving(tmp_path):
    """A starting run trained with configs/distill.py serves with keys the RL presets lack
    (prior_weight, rerank_by_traffic, ...): the RL run takes them over, locked config or not."""
    from configs import distill as distill_configs
    from onesearch_jax import fileio

    start = distill_configs.get_config("small:sd")
    start.eval.prior_weight, start.eval.beam_size = 7.5, 24
    init = _fake_start(tmp_path / "sd")
    fileio.write_json(str(init / "train_config.json"), start.to_dict())
    c = dpo_configs.get_config("small")
    c.init_workdir = str(init)
    adopted = rl_run.adopt_init_config(c, str(tmp_path / "dpo"))
    assert adopted.model.encoder == "frozen_minilm" and c.model.to_dict() == start.model.to_dict()
    assert c.eval.beam_size == 24 and c.eval.prior_weight == 7.5
    for key in rl_run.SERVING_KEYS:
        if key in start.eval:
            want = start.eval[key]
            assert c.eval[key] == (tuple(want) if isinstance(want, (list, tuple)) else want)
    assert (tmp_path / "dpo" / "world").exists()
    assert c.data.state_cache == str(init / "minilm_states")  # the start's, made absolute
    own = dpo_configs.get_config("small")
    own.init_workdir, own.data.state_cache = str(init), "/elsewhere/states"
    rl_run.adopt_init_config(own, str(tmp_path / "dpo"))
    assert own.data.state_cache == "/elsewhere/states"  # --config.data.state_cache wins


def test_a_start_cache_recorded_relative_to_another_directory_is_found(tmp_path, monkeypatch):
    import ml_collections
    init = tmp_path / "demo"
    (init / "minilm_states").mkdir(parents=True)
    recorded = ml_collections.ConfigDict({"data": {"state_cache": "workdirs/demo/minilm_states"}})
    monkeypatch.chdir(tmp_path / "demo")  # not where the demo ran
    assert rl_run.start_state_cache(recorded, str(init)) == str(init / "minilm_states")
    config = ml_collections.ConfigDict({"data": {"state_cache": "states"}})
    sft_run.record_state_cache_whole(config)
    assert config.data.state_cache == str(tmp_path / "demo" / "states")


class _Builder:
    """The three things RlPrompts reads from a TaskBuilder."""
    dec_len = 4
    item_tokens = np.arange(10 * 3, dtype=np.int32).reshape(10, 3) + 100

    def personalized_inputs(self, q, u, h):
        return np.stack([q, u, h[:, 0]], 1).astype(np.int32)


def test_prompts_keep_rewarded_events_with_their_targets_and_replay_by_step():
    events = dict(query_id=np.array([0, 1, 2]), user_id=np.array([5, 6, 7]),
                  history=np.array([[1], [2], [3]]),
                  items=np.array([[4, 5, 6], [7, 8, -1], [1, 2, 3]]),
                  clicks=np.array([[0, 1, 0], [0, 0, 0], [0, 0, 1]]),
                  orders=np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0]]))
    codes = np.arange(10 * 3).reshape(10, 3) % 7
    prompts = rl_run.RlPrompts(_Builder(), events, codes, batch_size=4, seed=0)
    assert len(prompts) == 2  # event 1 has neither a click nor an order
    a = prompts.arrays
    np.testing.assert_array_equal(a["query_id"], [0, 2])
    np.testing.assert_array_equal(a["target_mask"], [[1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(a["targets"][0, :2], codes[[4, 5]])
    # The SFT term's SID is the first clicked item (5 in event 0, 3 in event 2), then EOS pad.
    np.testing.assert_array_equal(a["sft_dec_targets"][:, :3], _Builder.item_tokens[[5, 3]])
    np.testing.assert_array_equal(a["sft_dec_inputs"][:, 1:], a["sft_dec_targets"][:, :-1])
    first, again = prompts.batch(3), next(prompts(3))
    for k in first:
        np.testing.assert_array_equal(first[k], again[k])
    with pytest.raises(ValueError, match="no training event has a click or an order"):
        rl_run.RlPrompts(_Builder(), dict(events, clicks=0 * events["clicks"],
                                          orders=0 * events["orders"]), codes,
                         batch_size=4, seed=0)


def test_each_tpma_variant_changes_only_the_rl_keys_it_names():
    from configs import grpo as grpo_configs

    base = tpma_configs.get_config("small").rl.to_dict()
    named = {"no_gate": {"gate": False}, "flat": {"position_weights": "flat"},
             "last_weighted": {"last_zero": False}, "w_item": {"w_item": 1.0},
             "model_logp": {"policy_logp": "model"}}
    assert set(named) == set(tpma_configs.ABLATIONS) - {"tpma"}
    for variant, keys in named.items():
        c = tpma_configs.get_config(f"small:{variant}")
        changed = {k: v for k, v in c.rl.to_dict().items() if base[k] != v}
        assert changed == keys and c.rung == f"tpma_{variant}", variant
        assert grpo_configs.RL_RUNGS[c.rung] == (f"configs/tpma.py:{{preset}}:{variant}", "dpo")
    assert base["policy_logp"] == "sampled"
