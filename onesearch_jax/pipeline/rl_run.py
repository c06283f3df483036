"""The RL stages on a world workdir: list-wise DPO and (TPMA-)GRPO, starting from a trained run.

    python -m experiments.train --config=configs/tpma.py:small --workdir=W_rl \\
        --config.init_workdir=W_sd

The new workdir shares W_sd's world and SIDs (symlinks) and copies its model and data config, so
`experiments.evaluate --workdir=W_rl` scores it like any other run. Prompts are the training
days' events with a click or an order: the serving input (query, profile, recent clicks), the
event's clicked and ordered SIDs as TPMA's targets, and its first clicked SID for the SFT term.
Before each update the loop's rollout hook samples G SIDs per prompt from the current policy (for
DPO: from the frozen reference), recomputes their log-probs, and scores them with the logged
reward (train/rewards.py; never the simulator's click model).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from onesearch_jax import artifacts, checkpoint_params, fileio
from onesearch_jax import distributed
from onesearch_jax import workdir as wd
from onesearch_jax.data import encoder_memory
from onesearch_jax.data.sft_tasks import decoder_inputs, sid_targets
from onesearch_jax.model.presets import TransformerConfig
from onesearch_jax.model.transformer import build_model
from onesearch_jax.sid.trie import SidTrie
from onesearch_jax.pipeline import sft_run
from onesearch_jax.train import rl
from onesearch_jax.train.stage_spec import SPECS
from onesearch_jax import sharding as sharding_lib
from onesearch_jax.train.loop import train_loop
from onesearch_jax.train.rewards import LoggedRewards
from onesearch_jax.train.rollout import make_rollout_fn
from onesearch_jax.train.train_state import setup_train_state
from onesearch_jax.pipeline.variant_workdir import COPIED, prepare_run_dir

ADOPTED = ("model", "data")  # sections an RL run takes from the run it starts from


class RlPrompts:
    """The loop's batch factory over training events with a click or an order.

    `batches(position, rows)` yields prompt batches position, position+1, ... (only `rows` of
    each: this process's share); batch s draws its rows with default_rng([seed, s]), so a
    resumed run sees the same prompts."""

    def __init__(self, builder, events: Mapping[str, np.ndarray], item_codes: np.ndarray, *,
                 batch_size: int, seed: int):
        clicks, orders = np.asarray(events["clicks"]), np.asarray(events["orders"])
        items = np.asarray(events["items"])
        positive = ((clicks > 0) | (orders > 0)) & (items >= 0)
        rows = np.flatnonzero(positive.any(1))
        if len(rows) == 0:
            raise ValueError("no training event has a click or an order: nothing to reward")
        positive, items = positive[rows], items[rows]
        q, u = np.asarray(events["query_id"])[rows], np.asarray(events["user_id"])[rows]
        self.arrays = {
            "enc_tokens": builder.personalized_inputs(q, u, np.asarray(events["history"])[rows]),
            "targets": np.asarray(item_codes, np.int32)[np.maximum(items, 0)],
            "target_mask": positive.astype(np.float32),
            "query_id": q.astype(np.int32), "user_id": u.astype(np.int32),
        }
        clicked = (clicks[rows] > 0) & (items >= 0)
        first = np.where(clicked.any(1), np.argmax(clicked, 1), np.argmax(positive, 1))
        dec, weights = sid_targets(builder.item_tokens[items[np.arange(len(rows)), first]],
                                   builder.dec_len)
        self.arrays.update(sft_dec_inputs=decoder_inputs(dec), sft_dec_targets=dec,
                           sft_dec_weights=weights)
        self.batch_size, self.seed = int(batch_size), int(seed)

    def __len__(self):
        return len(self.arrays["query_id"])

    def batch(self, step: int, rows: slice | None = None) -> dict[str, np.ndarray]:
        idx = np.random.default_rng([self.seed, step]).integers(0, len(self), self.batch_size)
        idx = idx if rows is None else idx[rows]
        return {k: v[idx] for k, v in self.arrays.items()}

    def __call__(self, position: int, rows: slice | None = None):
        step = int(position)
        while True:
            yield self.batch(step, rows)
            step += 1


class RolloutHook:
    """`hook(state, prompts, rng) -> batch`: the loop's rollout step (jitted sampling and
    log-probs on the mesh, then host-side rewards of this process's rows).

    The prompts are this process's rows of a global batch of `global_batch` (default: they are
    the whole batch, one process)."""

    def __init__(self, model, vocab, trie: SidTrie, rewards, setup, settings: dict,
                 ref_params=None, global_batch: int | None = None):
        self.rewards, self.setup, self.global_batch = rewards, setup, global_batch
        self.trie = jax.device_put(trie, sharding_lib.replicated(setup.mesh))
        self.ref_params = ref_params
        self.sample_reference = settings["stage"] == "dpo" and settings["candidates"] == "reference"
        if (rl.needs_reference(settings) or self.sample_reference) and ref_params is None:
            raise ValueError("this RL stage needs the frozen reference parameters")
        self.fn = jax.jit(make_rollout_fn(
            model, vocab, group_size=int(settings["group_size"]),
            sampler=settings["sampler"], temperature=float(settings["temperature"]),
            with_reference=rl.needs_reference(settings), policy_logp=settings["policy_logp"]),
            out_shardings=sharding_lib.batch_sharding(setup.mesh, setup.rules))

    def __call__(self, state, prompts, rng):
        keys = [k for k in ("enc_tokens", "enc_states") if k in prompts]
        enc = sharding_lib.shard_batch({k: prompts[k] for k in keys}, self.setup.mesh,
                                       self.setup.rules, self.global_batch)
        ref = state.params if self.ref_params is None else self.ref_params
        sample = ref if self.sample_reference else state.params
        with jax.set_mesh(self.setup.mesh), nn.logical_axis_rules(self.setup.rules):
            out = self.fn(sample, state.params, ref, self.trie, enc["enc_tokens"], rng,
                          enc.get("enc_states"))
        out = jax.tree.map(sharding_lib.process_local_rows, out)
        rewards = self.rewards(prompts["query_id"], prompts["user_id"], out["items"])
        return rl.attach_rewards(prompts, out, rewards)


def check_init_workdir(init: str, workdir: str) -> None:
    """Refuses, before anything is linked, a start that is not a trained run on a built world."""
    if not fileio.isdir(init):
        raise FileNotFoundError(f"config.init_workdir={init}: no such directory")
    if fileio.absolute(init) == fileio.absolute(workdir):
        raise ValueError("config.init_workdir must differ from --workdir (RL writes its own "
                         "checkpoints; the reference run stays untouched)")
    path = os.path.join(init, "train_config.json")
    if not fileio.exists(path):
        raise FileNotFoundError(f"{path} is missing: {init} is not a trained workdir")
    if not fileio.exists(os.path.join(wd.world_dir(init), "BUILD_DONE")):
        raise ValueError(f"config.init_workdir={init} has no built world (world/BUILD_DONE): the "
                         "RL stages train on a simulated world's logs, not on a real catalog")
    if not wd.has_checkpoint(init):
        raise FileNotFoundError(f"config.init_workdir={init} has no checkpoint: train it first")


def link_init_world(init: str, workdir: str) -> None:
    """Links `workdir` to the start's world, SIDs and data (prepare_run_dir); a workdir linked
    to another start's world that has trained nothing yet (a start refused after linking) is
    re-pointed, its copied configs and baseline metrics with it."""
    link = os.path.join(workdir, "world")
    if fileio.is_remote(workdir) or (os.path.exists(link) and not os.path.islink(link)):
        if not fileio.exists(link):  # a bucket: prepare_run_dir says what to copy
            prepare_run_dir(init, workdir)
        return  # a world copied or built in place
    target = os.path.realpath(wd.world_dir(init))
    if os.path.islink(link) and os.path.realpath(link) != target:
        if wd.has_checkpoint(workdir):
            raise ValueError(f"{workdir} trained on the world at {os.path.realpath(link)}, "
                             f"config.init_workdir={init} on {target}: use a new --workdir")
        for name in COPIED + (wd.METRICS_FILE,):  # the other start's, nothing of this run's
            if os.path.exists(os.path.join(workdir, name)):
                os.remove(os.path.join(workdir, name))
    prepare_run_dir(init, workdir)


def adopt_init_config(config, workdir: str) -> ml_collections.ConfigDict:
    """Links `workdir` to config.init_workdir's world and SIDs, copies that run's model and data
    sections into `config`, and returns its training config (to restore its parameters)."""
    init = str(config.get("init_workdir", "") or "")
    if not init:
        raise ValueError("config.init_workdir is empty: name the trained workdir (e.g. the "
                         "self-distilled one) this RL stage starts from")
    check_init_workdir(init, workdir)
    init_config = ml_collections.ConfigDict(fileio.read_json(os.path.join(init,
                                                                         "train_config.json")))
    distributed.on_writer_then_all("prepare_run_dir", lambda: link_init_world(init, workdir))
    own_cache = config.data.get("state_cache", "")
    for section in ADOPTED:
        config[section] = ml_collections.ConfigDict(init_config[section].to_dict())
    if "state_cache" in config.data:
        # The starting run's frozen MiniLM states (not an empty cache of our own), or the
        # folder this run's config names.
        config.data.state_cache = own_cache or start_state_cache(init_config, init)
    config.eval.beam_size = int(init_config.eval.beam_size)
    config.eval.cot_keyword_len = int(init_config.eval.get("cot_keyword_len", 0))
    with config.eval.unlocked():  # keys the RL presets do not define (a starting run's serving)
        for key in SERVING_KEYS:  # served like the starting run, so the rungs compare
            if key in init_config.eval:
                value = init_config.eval[key]
                config.eval[key] = tuple(value) if isinstance(value, (list, tuple)) else value
    return init_config


def start_state_cache(init_config, init: str) -> str:
    """The absolute folder of the starting run's MiniLM states. A path it recorded relative to
    the directory it ran in (runs before paths were recorded whole) falls back to the run's own
    W/minilm_states when that is where the states are."""
    folder = encoder_memory.state_cache_folder(init_config, init)
    if not os.path.isabs(folder) and not os.path.isdir(folder):
        own = os.path.join(init, "minilm_states")
        folder = own if os.path.isdir(own) else folder
    return os.path.abspath(folder)


SERVING_KEYS = ("prior_weight", "prior_by_traffic", "rerank_by_traffic")


def restore_init_params(model, init_config, init_workdir: str, setup):
    """The starting run's latest parameters (no optimizer state), sharded like the RL run's."""
    return checkpoint_params.restore_params(wd.checkpoint_dir(init_workdir), init_config.model,
                                            setup.abstract.params)


@dataclasses.dataclass
class RlSetup:
    """Everything an RL stage trains with, built once from the config and workdir."""
    model: object
    mesh: object
    prompts: Callable  # RlPrompts, or its batches with MiniLM states attached
    hook: RolloutHook
    init_params: object
    make_step: Callable
    check_batch: Callable
    eval_fn: Callable


def build_rl(config, workdir: str, stage: str) -> RlSetup:
    """Adopts the starting run, builds the prompts, the logged reward and the rollout hook."""
    settings = rl.rl_settings(config, stage)  # refuse bad keys before any data is built
    init_config = adopt_init_config(config, workdir)
    world, vocab, item_codes, builder = sft_run.prepare(config, workdir)
    wd.guard_config(workdir, "train", config, produced=wd.has_checkpoint(workdir))
    events = artifacts.load_events(workdir, "train")
    prompts = RlPrompts(builder, events, item_codes, batch_size=int(config.train.batch_size),
                        seed=int(config.train.seed))
    rewards = LoggedRewards(world, artifacts.load_reward_model(workdir), events,
                            settings["reward_weights"])
    print(f"{stage}: {len(prompts)} prompts (training events with a click or an order), "
          f"group {settings['group_size']}, advantage "
          f"{settings['advantage'] if stage == 'grpo' else 'list-wise DPO'}, from "
          f"{config.init_workdir}", flush=True)
    model = build_model(TransformerConfig(**config.model.to_dict()))
    mesh = sharding_lib.make_mesh(config.mesh.shape)
    setup = setup_train_state(model, config, mesh)
    init_params = restore_init_params(model, init_config, str(config.init_workdir), setup)
    trie = SidTrie.build(item_codes, vocab.level_sizes, popularity=world.catalog.popularity)
    # The reference is its own copy: the loop donates the state, whose first parameters are
    # init_params' buffers.
    reference = jax.tree.map(jnp.copy, init_params) if rl.needs_reference(settings) else None
    hook = RolloutHook(model, vocab, trie, rewards, setup, settings, ref_params=reference,
                       global_batch=int(config.train.batch_size))
    memory = encoder_memory.for_config(config, builder.tok, workdir)
    batches = prompts
    if memory is not None:
        sft_run.cache_states(memory, [prompts.arrays["enc_tokens"]])
        batches = encoder_memory.with_states(prompts, memory)
    eval_fn = sft_run.make_world_eval_fn(config, workdir, world, model, vocab, item_codes,
                                         builder, memory)
    spec = SPECS[stage]
    return RlSetup(model, mesh, batches, hook, init_params, spec.make_step(vocab),
                   spec.batch_checker(config, vocab), eval_fn)


def run_rl(config, workdir: str, stage: str, stream=None) -> dict[str, float]:
    """Trains stage `grpo` or `dpo` (or resumes it) to config.train.steps."""
    b = build_rl(config, workdir, stage)
    result = train_loop(config, workdir, b.model, b.prompts, b.eval_fn, mesh=b.mesh,
                        make_step=b.make_step, check_batch=b.check_batch, stream=stream,
                        init_params=lambda params: b.init_params, rollout=b.hook)
    summary = {f"train/{k}": v for k, v in result.metrics.items()}
    summary["train/steps"] = result.step
    wd.write_metrics(workdir, "train", summary, config)
    return summary


def run_grpo(config, workdir: str, stream=None) -> dict[str, float]:
    """GRPO-family RL (config.rl.advantage: `grpo` or `tpma`)."""
    return run_rl(config, workdir, "grpo", stream)


def run_dpo(config, workdir: str, stream=None) -> dict[str, float]:
    """List-wise DPO against the frozen starting run."""
    return run_rl(config, workdir, "dpo", stream)
