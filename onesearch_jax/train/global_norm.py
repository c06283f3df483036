"""Gradient clipping over same-role parameters stacked: a GPU kernel per role, not per leaf.

`optax.clip_by_global_norm` sums one reduction per leaf, and XLA's GPU compiler keeps them
apart: for `small` (163 leaves) ~230 reduction kernels of a ~1,100-kernel step, each a launch
of a few microseconds where the step's arithmetic takes about a millisecond. Leaves that differ
only in their layer number (`dec_0/mlp/wi/kernel`, `dec_1/mlp/wi/kernel`, ...) come from the same
module code, so they share shape, dtype and logical sharding: stacked along a new leading axis
they are one reduction, read straight from the leaves (no copy, no resharding on any mesh).
The clipped updates are computed on the stacks too, so AdamW's per-leaf updates read slices of
one array per role, and XLA fuses them by role as well: the compiled `small` step goes from
1,097 to 940 kernels (benchmarks/gpu_aot.py, docs/scaling.md).

AdamW itself stays per leaf: its update over stacks would write new buffers and copy them back
into the donated state, a copy per leaf and state buffer (378 copy kernels for `small`).

`train.grad_norm`: 'stacked', 'per_leaf' (optax's), or 'auto' (default): stacked on a GPU only,
where each kernel is a launch. A TPU runs one program with no launches to save, and XLA's
estimate of `base` there reads 10% more bytes stacked (v5e, batch 256: 35.3 -> 38.9 GB); on a
CPU 'auto' keeps optax's, so earlier CPU results stay bit for bit.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import optax

from onesearch_jax.model import transformer

GRAD_NORMS = ("auto", "stacked", "per_leaf")
_NUMBER = re.compile(r"\d+")


def role_groups(tree) -> list[list[int]]:
    """Leaf indices of `tree` grouped by (path with its numbers starred, shape, dtype), in
    first-appearance order; a leaf without a same-role sibling is a group of one."""
    groups: dict[tuple, list[int]] = {}
    for i, (path, leaf) in enumerate(jax.tree_util.tree_leaves_with_path(tree)):
        role = _NUMBER.sub("*", jax.tree_util.keystr(path))
        groups.setdefault((role, tuple(jnp.shape(leaf)), jnp.result_type(leaf)), []).append(i)
    return list(groups.values())


def stack_groups(tree, groups: list[list[int]]) -> list[jax.Array]:
    """The leaves of `tree` as one array per group (a group of one: the leaf itself)."""
    leaves = jax.tree.leaves(tree)
    return [leaves[g[0]] if len(g) == 1 else jnp.stack([leaves[i] for i in g]) for g in groups]


def unstack_groups(blocks: list[jax.Array], groups: list[list[int]], treedef):
    """Inverse of `stack_groups`."""
    leaves = [None] * treedef.num_leaves
    for block, group in zip(blocks, groups):
        for j, i in enumerate(group):
            leaves[i] = block if len(group) == 1 else block[j]
    return jax.tree.unflatten(treedef, leaves)


def stacked_norm(blocks: list[jax.Array]) -> jax.Array:
    """sqrt(sum of squares) over the blocks, in float32."""
    total = jnp.zeros((), jnp.float32)
    for block in blocks:
        total = total + jnp.sum(jnp.square(block.astype(jnp.float32)))
    return jnp.sqrt(total)


def global_norm(tree) -> jax.Array:
    """`optax.tree.norm(tree)` up to the summation order, one reduction per role."""
    return stacked_norm(stack_groups(tree, role_groups(tree)))


def resolve(layout: str, platform: str | None = None) -> str:
    """'stacked' or 'per_leaf' for `layout` (one of GRAD_NORMS) on `platform` (default: the
    one being traced for, `transformer.current_platform`)."""
    if layout not in GRAD_NORMS:
        raise ValueError(f"train.grad_norm must be one of {GRAD_NORMS}, got {layout!r}")
    if layout != "auto":
        return layout
    platform = platform or transformer.current_platform()
    return "stacked" if platform in transformer.GPU_PLATFORMS + ("rocm",) else "per_leaf"


def clip_by_global_norm(max_norm: float, layout: str = "auto") -> optax.GradientTransformation:
    """`optax.clip_by_global_norm(max_norm)` (same rule, same empty state), over same-role
    leaves stacked where `resolve(layout)` says so (decided when the step is traced). The
    clipped updates are computed on the stacks too: AdamW's per-leaf updates then read slices
    of one array per role, and XLA fuses them by role."""
    resolve(layout, "cpu")  # refuses a bad layout when the optimizer is built
    per_leaf = optax.clip_by_global_norm(max_norm)

    def update_fn(updates, state, params=None):
        if resolve(layout) == "per_leaf":
            return per_leaf.update(updates, state, params)
        groups = role_groups(updates)
        blocks = stack_groups(updates, groups)
        norm = stacked_norm(blocks)
        keep = norm < max_norm

        def clip(t):
            return jax.lax.select(keep, t, (t / norm.astype(t.dtype)) * max_norm)

        clipped = [clip(b) for b in blocks]
        return unstack_groups(clipped, groups, jax.tree.structure(updates)), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)
