"""FGM (Miyato et al.): the adversarial move of one parameter table (the token embeddings) along
its own loss gradient, for a second forward pass whose gradients are added (train/step.py)."""
from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp


def fgm_perturbation(grad, epsilon):
    """FGM adversarial step r = epsilon * g / ||g||_2 (Frobenius norm of the whole array).

    Why: Fast Gradient Method perturbs the embedding table along the loss
    gradient for adversarial training. Returns zeros (not NaN) when g == 0.
    The norm is computed on g / max|g| so large or tiny gradients neither
    overflow nor underflow in float32. Returned in float32.
    """
    g = jnp.asarray(grad).astype(jnp.float32)
    scale = jnp.max(jnp.abs(g)) if g.size else jnp.float32(0.0)
    nonzero = scale > 0
    g_scaled = g / jnp.where(nonzero, scale, 1.0)
    norm_scaled = jnp.sqrt(jnp.sum(jnp.square(g_scaled)))
    direction = g_scaled / jnp.where(nonzero, norm_scaled, 1.0)
    return jnp.where(nonzero, jnp.asarray(epsilon, jnp.float32) * direction, 0.0)


def _get_at_path(tree, path, name):
    node = tree
    for i, key in enumerate(path):
        if not isinstance(node, Mapping) or key not in node:
            raise KeyError(
                f"path {tuple(path)!r} not found in {name}: missing key {key!r} "
                f"at depth {i} (prefix {tuple(path[:i])!r})"
            )
        node = node[key]
    if isinstance(node, Mapping):
        raise KeyError(f"path {tuple(path)!r} in {name} points to a subtree, not an array leaf")
    return node


def _replace_at_path(tree, path, value):
    """Copy of `tree` with tree[path] = value; dicts along the path are copied."""
    new = dict(tree)
    key = path[0]
    new[key] = value if len(path) == 1 else _replace_at_path(tree[key], path[1:], value)
    if type(tree) is dict:
        return new
    try:
        return type(tree)(new)  # e.g. flax FrozenDict
    except TypeError:
        return new


def fgm_perturb_tree(params, grads, path, epsilon):
    """Copy of nested-dict `params` with the leaf at `path` moved by fgm_perturbation.

    Why: FGM only perturbs one table (usually the token embedding, e.g.
    path=("embed", "embedding")); everything else is shared unchanged. The
    perturbation is stop-gradiented (it is a constant offset for the
    adversarial forward pass) and cast to the leaf's dtype. Raises KeyError
    naming `path` when it is absent from params or grads.
    """
    path = tuple(path)
    if not path:
        raise KeyError("path must name at least one key, got ()")
    leaf = _get_at_path(params, path, "params")
    grad_leaf = _get_at_path(grads, path, "grads")
    if jnp.shape(grad_leaf) != jnp.shape(leaf):
        raise ValueError(
            f"grads at {path!r} has shape {jnp.shape(grad_leaf)}, params has {jnp.shape(leaf)}"
        )
    r = jax.lax.stop_gradient(fgm_perturbation(grad_leaf, epsilon))
    leaf = jnp.asarray(leaf)
    return _replace_at_path(params, path, leaf + r.astype(leaf.dtype))
