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


def assert_resume_equals_uninterrupted(tmp_path, config, model, batch_fn, preempting_batches,
                                       make_step, check_batch, steps: int = 4):
    """A run preempted at its second batch and rerun ends with the parameters of a straight run
    (one device; `preempting_batches` is the conftest fixture)."""
    import functools
    import io

    import chex

    from onesearch_jax.train.loop import train_loop

    run = functools.partial(train_loop, config, model=model, stream=io.StringIO(),
                            mesh=sharding.make_mesh((1, 1, 1), devices=jax.devices()[:1]),
                            make_step=make_step, check_batch=check_batch)
    straight = run(str(tmp_path / "a"), batch_iter_factory=preempting_batches(batch_fn))
    first = run(str(tmp_path / "b"), batch_iter_factory=preempting_batches(batch_fn,
                                                                           sigterm_at=1))
    assert first.preempted and first.step < steps
    second = run(str(tmp_path / "b"), batch_iter_factory=preempting_batches(batch_fn))
    assert second.step == steps
    chex.assert_trees_all_close(straight.state.params, second.state.params, rtol=1e-6, atol=1e-6)
