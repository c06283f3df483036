"""Shared by the step tests: a few steps of a stage on a mesh, the losses recorded (what the
"sharded == one device" tests compare)."""
import jax

from onesearch_jax import sharding
from onesearch_jax.model.transformer import build_model
from onesearch_jax.train.train_state import create_train_state, setup_train_state


def train_on_mesh(mesh, config, batches, make_step):
    """(final state, per-step losses) of `make_step(model, config, setup)` over `batches` on
    `mesh`, from the config's seed, each batch split over the mesh's batch axes."""
    model = build_model(config.model)
    setup = setup_train_state(model, config, mesh)
    state = create_train_state(setup, config.train.seed)
    step = make_step(model, config, setup)
    losses = []
    for b in batches:
        state, m = step(state, sharding.shard_batch(b, mesh, setup.rules), jax.random.key(1))
        losses.append(float(m["loss"]))
    return state, losses
