"""The exact trie of real semantic IDs, as fixed-shape device arrays, for constrained decoding.

Layout (built once in numpy, then moved to the device):

* The unique SIDs are sorted lexicographically. A *node at depth d* (d = 0..L) is a distinct
  prefix of length d; nodes at each depth are numbered in lexicographic order, so the root is
  node 0 at depth 0 and the leaves (depth L) are the unique SIDs in sorted order.
* Because of that ordering the children of a depth-d node are a contiguous run of depth-(d+1)
  nodes: ``child_start[d][p] .. child_start[d][p+1]``, and ``node_code[d][j]`` is the level-d
  code of depth-(d+1) node ``j``. Codes are ascending inside each run.
* Items hang off the leaves in CSR form: ``item_order[leaf_item_start[s]:leaf_item_start[s+1]]``
  are the items whose SID is leaf ``s``, most popular first.

Decoding state is simply the node id at the current depth, int32[B]; ``-1`` is a dead prefix
(no real item extends it) whose mask is all False. Every function is vectorised over the batch
and uses shapes fixed by the trie (``max_children`` per level), so it jits on CPU, GPU and TPU.
Memory is O(number of unique SIDs * L): about 40 MB for 1M items with L = 5.
"""

from __future__ import annotations

from typing import Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


class LeafItems:
    """The trie's leaf -> items table on the host, copied off the device once: serving looks up
    each returned leaf id here (a numpy slice) instead of copying the tables per query."""

    def __init__(self, leaf_item_start, item_order):
        self.starts = np.asarray(leaf_item_start)
        self.order = np.asarray(item_order)

    @classmethod
    def from_trie(cls, trie: "SidTrie") -> "LeafItems":
        return cls(trie.leaf_item_start, trie.item_order)

    def items(self, leaf: int) -> np.ndarray:
        """Items of leaf id `leaf`, most popular first; empty for -1 (not a real SID)."""
        if leaf < 0:
            return self.order[:0]
        return self.order[self.starts[leaf] : self.starts[leaf + 1]]


@flax.struct.dataclass
class SidTrie:
    """Device-resident trie over the SIDs of real items (a pytree; static sizes are aux data)."""

    child_start: tuple[jax.Array, ...]  # L arrays; [d] is int32[n_d + 1]
    node_code: tuple[jax.Array, ...]  # L arrays; [d] is int32[n_{d+1}], level-d code of each child
    leaf_item_start: jax.Array  # int32[n_L + 1]
    item_order: jax.Array  # int32[num_items], item indices grouped by leaf
    level_sizes: tuple[int, ...] = flax.struct.field(pytree_node=False)
    max_children: tuple[int, ...] = flax.struct.field(pytree_node=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, codes, level_sizes: Sequence[int], popularity=None) -> "SidTrie":
        """Builds the trie from item SIDs ``codes`` int[N, L] with codes[:, l] in [0, level_sizes[l]).

        ``popularity`` (float[N], optional) orders the items that share one SID, most popular first;
        ties (and the default) keep ascending item index.
        """
        codes = np.asarray(codes)
        level_sizes = tuple(int(s) for s in level_sizes)
        if codes.ndim != 2 or codes.shape[0] == 0:
            raise ValueError(f"codes must be a non-empty (N, L) array, got shape {codes.shape}")
        if not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(f"codes must be integers, got dtype {codes.dtype}")
        num_items, depth = codes.shape
        if len(level_sizes) != depth:
            raise ValueError(f"level_sizes has {len(level_sizes)} entries but codes have L={depth}")
        if any(s <= 0 for s in level_sizes):
            raise ValueError(f"level_sizes must be positive, got {level_sizes}")
        if codes.min() < 0 or np.any(codes.max(axis=0) >= np.array(level_sizes)):
            raise ValueError(f"codes out of range for level_sizes {level_sizes}")
        codes = codes.astype(np.int64)
        if popularity is None:
            popularity = np.zeros(num_items)
        popularity = np.asarray(popularity, dtype=np.float64)
        if popularity.shape != (num_items,):
            raise ValueError(f"popularity must have shape ({num_items},), got {popularity.shape}")

        # Items sorted by SID (lexicographic), then popularity desc, then item index.
        keys = [np.arange(num_items), -popularity] + [codes[:, l] for l in reversed(range(depth))]
        order = np.lexsort(keys)
        sorted_codes = codes[order]
        # new_at[d][i]: sorted item i starts a new prefix of length d+1.
        differs = np.ones((num_items, depth), dtype=bool)
        differs[1:] = sorted_codes[1:] != sorted_codes[:-1]
        new_at = np.logical_or.accumulate(differs, axis=1)

        child_start, node_code, max_children = [], [], []
        parent_of_item = np.zeros(num_items, dtype=np.int64)  # node id at depth d of each item
        num_parents = 1
        for d in range(depth):
            starts = new_at[:, d]
            node_of_item = np.cumsum(starts) - 1  # node id at depth d+1
            parents = parent_of_item[starts]  # ascending by construction
            cs = np.searchsorted(parents, np.arange(num_parents + 1)).astype(np.int32)
            child_start.append(cs)
            node_code.append(sorted_codes[starts, d].astype(np.int32))
            max_children.append(int(np.max(np.diff(cs))))
            parent_of_item, num_parents = node_of_item, int(node_of_item[-1]) + 1
        leaf_item_start = np.searchsorted(parent_of_item, np.arange(num_parents + 1)).astype(
            np.int32
        )

        return cls(
            child_start=tuple(jnp.asarray(a) for a in child_start),
            node_code=tuple(jnp.asarray(a) for a in node_code),
            leaf_item_start=jnp.asarray(leaf_item_start),
            item_order=jnp.asarray(order.astype(np.int32)),
            level_sizes=level_sizes,
            max_children=tuple(max_children),
        )

    # ------------------------------------------------------------------ sizes
    @property
    def depth(self) -> int:
        return len(self.level_sizes)

    @property
    def num_sids(self) -> int:
        """Number of distinct SIDs (leaves)."""
        return int(self.leaf_item_start.shape[0]) - 1

    @property
    def num_items(self) -> int:
        return int(self.item_order.shape[0])

    def num_nodes(self, depth: int) -> int:
        """Number of distinct prefixes of length ``depth``."""
        return 1 if depth == 0 else int(self.node_code[depth - 1].shape[0])

    # ------------------------------------------------------------------ numpy-side lookups
    def sid_items(self, codes) -> list[np.ndarray]:
        """Items (most popular first) for each SID in ``codes`` int[B, L]; empty for unknown SIDs.

        A convenience: copies the item tables to the host on each call. Serving keeps one
        ``LeafItems`` and looks up the leaf ids the beam search returns instead.
        """
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self.depth:
            raise ValueError(f"codes must have shape (B, {self.depth}), got {codes.shape}")
        leaves = np.asarray(leaf_ids(self, jnp.asarray(codes, dtype=jnp.int32)))
        table = LeafItems.from_trie(self)
        return [table.items(s) for s in leaves]

    def all_sids(self) -> np.ndarray:
        """The unique SIDs, int32[num_sids, L], in lexicographic (leaf id) order."""
        cols, node = [], np.arange(self.num_sids)
        for d in reversed(range(self.depth)):
            cols.append(np.asarray(self.node_code[d])[node])
            cs = np.asarray(self.child_start[d])
            node = np.searchsorted(cs, node, side="right") - 1  # parent of each node
        return np.stack(cols[::-1], axis=1).astype(np.int32)

    def check(self) -> None:
        """Raises ValueError unless every path from the root ends in at least one real item."""
        for d in range(self.depth):
            cs, nc = np.asarray(self.child_start[d]), np.asarray(self.node_code[d])
            if cs.shape != (self.num_nodes(d) + 1,) or cs[0] != 0 or cs[-1] != nc.shape[0]:
                raise ValueError(f"level {d}: child_start does not cover the child nodes")
            counts = np.diff(cs)
            if np.any(counts <= 0):
                raise ValueError(f"level {d}: {int(np.sum(counts <= 0))} prefixes have no child")
            if counts.max() != self.max_children[d]:
                raise ValueError(f"level {d}: max_children is stale")
            if nc.min() < 0 or nc.max() >= self.level_sizes[d]:
                raise ValueError(f"level {d}: codes out of range")
            same_parent = np.ones(nc.shape[0], dtype=bool)
            same_parent[cs[:-1]] = False
            if np.any(np.diff(nc)[same_parent[1:]] <= 0):
                raise ValueError(f"level {d}: child codes not strictly ascending within a parent")
        ls = np.asarray(self.leaf_item_start)
        if ls[0] != 0 or ls[-1] != self.num_items or np.any(np.diff(ls) <= 0):
            raise ValueError("some SID leaves have no item")
        if not np.array_equal(np.sort(np.asarray(self.item_order)), np.arange(self.num_items)):
            raise ValueError("item_order is not a permutation of the items")


# ---------------------------------------------------------------------- jittable decoding ops
def root_state(trie: SidTrie, batch: int) -> jax.Array:
    """Decoding state before the first SID token: every row at the root (node 0)."""
    del trie
    return jnp.zeros((batch,), dtype=jnp.int32)


def _check_level(trie: SidTrie, level: int) -> None:
    if not 0 <= level < trie.depth:
        raise ValueError(f"level must be in [0, {trie.depth}), got {level}")


@flax.struct.dataclass
class ChildRuns:
    """Each row's children one level down, padded to the level's `max_children`: `node`
    int32[R, W] their node ids (-1 = padding), `code` int32[R, W] their codes (`size` =
    padding). Built once per decoding step, it gives both the mask and the next nodes. At
    level 0 every row is at the root, so R = 1: the root's run, shared by all rows."""

    node: jax.Array
    code: jax.Array
    size: int = flax.struct.field(pytree_node=False)  # the level's number of codes


def child_runs(trie: SidTrie, state: jax.Array, level: int) -> ChildRuns:
    """The children of each row's node ``state`` int32[B] at depth ``level`` (static); a dead row
    (-1) has none. O(B * max_children[level]) gathers; level 0: the root's run alone."""
    _check_level(trie, level)
    size, width = trie.level_sizes[level], trie.max_children[level]
    cs, nc = trie.child_start[level], trie.node_code[level]
    if level == 0:
        state = jnp.zeros((1,), jnp.int32)
    alive = state >= 0
    node = jnp.where(alive, state, 0)
    start, end = cs[node], jnp.where(alive, cs[node + 1], cs[node])
    idx = start[:, None] + jnp.arange(width, dtype=jnp.int32)[None, :]
    has = idx < end[:, None]
    code = jnp.where(has, nc[jnp.minimum(idx, nc.shape[0] - 1)], size)
    return ChildRuns(node=jnp.where(has, idx, -1).astype(jnp.int32),
                     code=code.astype(jnp.int32), size=size)


def runs_mask(runs: ChildRuns) -> jax.Array:
    """bool[R, size]: the codes that extend each row's prefix toward a real item (one scatter;
    [1, size] at level 0, which broadcasts over the rows)."""
    rows = jnp.broadcast_to(jnp.arange(runs.code.shape[0])[:, None], runs.code.shape)
    mask = jnp.zeros((runs.code.shape[0], runs.size), dtype=bool)
    return mask.at[rows, runs.code].set(True, mode="drop")


def follow(runs: ChildRuns, codes: jax.Array, rows: jax.Array | None = None) -> jax.Array:
    """Node ids one level down after row ``rows[i]`` of ``runs`` (row i if None) appends
    ``codes[i]``; -1 where that code is not a child. The same answer as `advance` from the
    step's own runs: one compare over the row's children instead of a binary search."""
    codes = codes.astype(jnp.int32)
    if runs.node.shape[0] == 1:  # the shared root: a code -> child table, O(size + rows)
        table = jnp.full((runs.size,), -1, jnp.int32).at[runs.code[0]].set(runs.node[0],
                                                                          mode="drop")
        return table[codes]
    node, code = (runs.node, runs.code) if rows is None else (runs.node[rows], runs.code[rows])
    return jnp.max(jnp.where(code == codes[:, None], node, -1), axis=1).astype(jnp.int32)


def allowed_mask(trie: SidTrie, state: jax.Array, level: int) -> jax.Array:
    """bool[B, level_sizes[level]]: the codes that extend each row's prefix toward a real item.

    ``state`` is int32[B] node ids at depth ``level`` (-1 = dead: all False). ``level`` is static.
    Cost O(B * max_children[level]) gathers plus one scatter (level 0: one root mask, broadcast).
    """
    mask = runs_mask(child_runs(trie, state, level))
    return (state >= 0)[:, None] & mask if level == 0 else mask


def advance(trie: SidTrie, state: jax.Array, codes: jax.Array, level: int) -> jax.Array:
    """Node ids at depth level+1 after appending ``codes`` int[B]; -1 where no real item follows.

    A fixed-iteration binary search inside each parent's (ascending) child-code run.
    """
    _check_level(trie, level)
    cs, nc = trie.child_start[level], trie.node_code[level]
    codes = codes.astype(jnp.int32)
    alive = state >= 0
    node = jnp.where(alive, state, 0)
    lo, hi = cs[node], cs[node + 1]  # search [lo, hi) for the first child code >= codes
    steps = max(1, int(np.ceil(np.log2(trie.max_children[level] + 1))))
    for _ in range(steps):
        mid = (lo + hi) // 2
        go_right = (mid < hi) & (nc[jnp.minimum(mid, nc.shape[0] - 1)] < codes)
        lo, hi = jnp.where(go_right, mid + 1, lo), jnp.where(go_right, hi, mid)
    found = alive & (lo < cs[node + 1]) & (nc[jnp.minimum(lo, nc.shape[0] - 1)] == codes)
    return jnp.where(found, lo, -1).astype(jnp.int32)


def leaf_ids(trie: SidTrie, codes: jax.Array) -> jax.Array:
    """int32[B] leaf (unique SID) id of each row of ``codes`` int[B, L]; -1 if not a real SID."""
    if codes.ndim != 2 or codes.shape[1] != trie.depth:
        raise ValueError(f"codes must have shape (B, {trie.depth}), got {codes.shape}")
    state = root_state(trie, codes.shape[0])
    for level in range(trie.depth):
        state = advance(trie, state, codes[:, level], level)
    return state


def is_valid(trie: SidTrie, codes: jax.Array) -> jax.Array:
    """bool[B]: whether each SID in ``codes`` int[B, L] belongs to at least one real item."""
    return leaf_ids(trie, codes) >= 0


def path_masks(trie: SidTrie, codes: jax.Array) -> jax.Array:
    """bool[B, L, max level size]: the allowed codes at every position along each row's SID
    ``codes`` int[B, L] (what constrained decoding masked when it wrote them), False past a
    level's size and after a dead prefix. RL recomputes the sampled distribution's log-probs
    from these masks."""
    if codes.ndim != 2 or codes.shape[1] != trie.depth:
        raise ValueError(f"codes must have shape (B, {trie.depth}), got {codes.shape}")
    width = max(trie.level_sizes)
    state, masks = root_state(trie, codes.shape[0]), []
    for level, size in enumerate(trie.level_sizes):
        masks.append(jnp.pad(allowed_mask(trie, state, level), ((0, 0), (0, width - size))))
        state = advance(trie, state, codes[:, level], level)
    return jnp.stack(masks, axis=1)
