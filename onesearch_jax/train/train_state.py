"""TrainState creation, sharded from birth (MaxText pattern).

`jax.eval_shape` of the init gives the boxed (logically-named) state; its logical
specs become NamedShardings through the config rules, and `jax.jit(init,
out_shardings=...)` materialises every array directly on its shards.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from onesearch_jax import sharding as sharding_lib
from onesearch_jax.model import transformer
from onesearch_jax.train import global_norm


def learning_rate_schedule(train_cfg) -> optax.Schedule:
    """Linear warmup from 0 to lr, then cosine decay to lr * min_lr_ratio at `steps`."""
    steps, warmup, lr = int(train_cfg.steps), int(train_cfg.warmup), float(train_cfg.lr)
    if steps <= 0 or warmup < 0:
        raise ValueError(f"train.steps must be > 0 and train.warmup >= 0 (got {steps}, {warmup})")
    if lr < 0:
        raise ValueError(f"train.lr must be >= 0, got {lr}")
    end = lr * float(train_cfg.get("min_lr_ratio", 0.0))
    if warmup >= steps:
        return optax.linear_schedule(0.0, lr, max(warmup, 1))
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, steps, end_value=end)


def _decay_mask(params):
    """Decay matrices (kernels, embeddings, learned positions), not biases or LayerNorm."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


PRETRAINED_KEY = "encoder"  # top-level params subtree loaded from pretrained weights


def scale_subtree_updates(key: str, factor: float) -> optax.GradientTransformation:
    """Multiplies the updates of params[key] by `factor` (stateless). Placed after AdamW this is
    exactly AdamW at lr * factor for that subtree, weight decay included."""

    def update_fn(updates, state, params=None):
        del params
        if key in updates:
            updates = {**updates, key: jax.tree.map(lambda u: u * factor, updates[key])}
        return updates, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


class ParamsEmaState(NamedTuple):
    ema: Any  # exponential moving average of the parameters (after each update)


def track_params_ema(decay: float) -> optax.GradientTransformation:
    """Keeps an EMA of the parameters in the optimizer state (updates pass through unchanged).

    Placed last in the chain, `params + updates` is the new parameter value, so the average
    follows the weights the step produces; living in opt_state, it is sharded like the params
    and checkpointed with them (the EMA self-distillation teacher reads it, `params_ema`)."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"train.ema_decay must be in [0, 1], got {decay}")

    def init_fn(params):
        return ParamsEmaState(ema=jax.tree.map(lambda p: p, params))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("track_params_ema needs params (use apply_gradients/TrainState)")
        new = optax.apply_updates(params, updates)
        return updates, ParamsEmaState(ema=ema_update(state.ema, new, decay))

    return optax.GradientTransformation(init_fn, update_fn)


def params_ema(opt_state):
    """The parameter EMA tracked by `track_params_ema` (ValueError when there is none)."""
    for leaf in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, ParamsEmaState)):
        if isinstance(leaf, ParamsEmaState):
            return leaf.ema
    raise ValueError("the optimizer keeps no parameter EMA; set train.ema_decay > 0")


def restart_params_ema(opt_state, params):
    """opt_state with any parameter EMA restarted at `params` (own buffers): a run whose
    parameters were edited after init (pretrained, restored, codebook rows) must not average
    towards the random init it replaced."""
    def restart(leaf):
        if isinstance(leaf, ParamsEmaState):
            return ParamsEmaState(ema=jax.tree.map(jnp.copy, params))
        return leaf
    return jax.tree.map(restart, opt_state, is_leaf=lambda x: isinstance(x, ParamsEmaState))


def make_optimizer(train_cfg) -> optax.GradientTransformation:
    """AdamW with warmup+cosine and global-norm clipping (clip <= 0 disables it; on a GPU the
    norm reads same-role parameters stacked, train.grad_norm: global_norm.py).

    `train.pretrained_lr_scale` (default 1) multiplies the learning rate of the pretrained
    encoder (params['encoder'], the `minilm` preset), so a decoder trained from scratch can use
    a rate that would wreck pretrained weights.
    """
    parts = []
    if float(train_cfg.clip) > 0:
        parts.append(global_norm.clip_by_global_norm(float(train_cfg.clip),
                                                     train_cfg.get("grad_norm", "auto")))
    parts.append(
        optax.adamw(
            learning_rate_schedule(train_cfg),
            b1=float(train_cfg.get("b1", 0.9)),
            b2=float(train_cfg.get("b2", 0.98)),
            eps=1e-8,
            weight_decay=float(train_cfg.weight_decay),
            mask=_decay_mask,
        )
    )
    scale = float(train_cfg.get("pretrained_lr_scale", 1.0))
    if not 0.0 <= scale:
        raise ValueError(f"train.pretrained_lr_scale must be >= 0, got {scale}")
    if scale != 1.0:
        parts.append(scale_subtree_updates(PRETRAINED_KEY, scale))
    ema_decay = float(train_cfg.get("ema_decay", 0.0))
    if ema_decay > 0:
        parts.append(track_params_ema(ema_decay))
    return optax.chain(*parts)


def _boxed_init_fn(model: nn.Module, tx: optax.GradientTransformation):
    def init(rng):
        params = transformer.init_params(model, rng)
        state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
        # A strong int32 step, as a restored checkpoint has: a fresh and a resumed run then
        # trace the same step function and share one compilation.
        return state.replace(step=jnp.zeros((), jnp.int32))

    return init


@dataclasses.dataclass(frozen=True)
class StateSetup:
    """Everything about the train state that is fixed by (model, config, mesh).

    One `tx` object is shared by the abstract state, the shardings and the init,
    so their pytree structures (which include the static tx) always match.
    """

    tx: optax.GradientTransformation
    abstract: TrainState  # ShapeDtypeStructs with .sharding: the checkpoint restore target
    shardings: TrainState  # NamedSharding per leaf
    init: Callable  # jitted rng -> TrainState, born sharded
    mesh: jax.sharding.Mesh
    rules: tuple


def setup_train_state(model: nn.Module, config, mesh: jax.sharding.Mesh) -> StateSetup:
    tx = make_optimizer(config.train)
    rules = sharding_lib.normalize_rules(config.mesh.logical_axis_rules)
    boxed_init = _boxed_init_fn(model, tx)
    boxed = jax.eval_shape(boxed_init, jax.random.key(0))
    shardings = sharding_lib.logical_to_shardings(nn.get_partition_spec(boxed), mesh, rules)
    abstract = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), nn.unbox(boxed), shardings
    )
    init = jax.jit(lambda rng: nn.unbox(boxed_init(rng)), out_shardings=shardings)
    return StateSetup(
        tx=tx, abstract=abstract, shardings=shardings, init=init, mesh=mesh, rules=rules
    )


def seed_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """(init key, dropout key) of a run: two independent streams from one seed, so changing how
    parameters are initialised never replays the dropout masks (and vice versa)."""
    root = jax.random.key(int(seed))
    return jax.random.fold_in(root, 0), jax.random.fold_in(root, 1)


def rollout_key(seed: int) -> jax.Array:
    """The RL stages' sampling stream, independent of init and dropout; step s samples with
    fold_in(rollout_key, s), so a resumed run replays the same rollouts."""
    return jax.random.fold_in(jax.random.key(int(seed)), 2)


def create_train_state(setup: StateSetup, seed: int) -> TrainState:
    """Fresh parameters from `seed`'s init key, each array created directly on its shards."""
    with jax.set_mesh(setup.mesh), nn.logical_axis_rules(setup.rules):
        return setup.init(seed_keys(seed)[0])


def ema_update(ema_params, params, decay):
    """Per-leaf decay * ema + (1 - decay) * params (the EMA teacher update).

    Why: the self-distillation teacher is a slow exponential moving average of
    the student. Computed in float32, result cast back to each EMA leaf's dtype
    so the tree's dtypes stay stable across steps. Raises ValueError when a
    Python-number decay is outside [0, 1]; traced decays are not checked.
    """
    if isinstance(decay, (int, float)) and not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    d = jnp.asarray(decay, jnp.float32)

    def _update(e, p):
        e = jnp.asarray(e)
        out = d * e.astype(jnp.float32) + (1.0 - d) * jnp.asarray(p).astype(jnp.float32)
        return out.astype(e.dtype)

    return jax.tree.map(_update, ema_params, params)
