"""SidTrie against brute-force prefix sets on random SID tables."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from onesearch_jax.sid import trie as trie_lib
from onesearch_jax.sid.trie import SidTrie

# (num_items, level_sizes, how codes are drawn)
CASES = [
    (40, (4, 3, 5), "uniform"),
    (300, (3, 2, 2, 2), "uniform"),  # heavy collisions: 24 possible SIDs, 300 items
    (60, (64, 32, 16), "few"),  # large levels where only a few codes are used
    (200, (16, 8, 8, 4, 4), "clustered"),
    (1, (7, 7), "uniform"),  # a single item
]


def make_codes(rng, num_items, level_sizes, kind):
    if kind == "uniform":
        return np.stack([rng.integers(0, s, num_items) for s in level_sizes], axis=1)
    if kind == "few":
        used = [rng.choice(s, size=max(1, s // 8), replace=False) for s in level_sizes]
        return np.stack([rng.choice(u, num_items) for u in used], axis=1)
    if kind == "clustered":
        centers = np.stack([rng.integers(0, s, 5) for s in level_sizes], axis=1)
        codes = centers[rng.integers(0, 5, num_items)].copy()
        codes[:, 2:] = np.stack([rng.integers(0, s, num_items) for s in level_sizes[2:]], axis=1)
        return codes
    raise ValueError(kind)


def masks_along(trie, rows):
    """Allowed-code masks after every prefix rows[:, :d], d = 0..L-1 (`path_masks`, one jitted
    walk), each cut to its level's size once its padding is checked False."""
    padded = np.asarray(jax.jit(trie_lib.path_masks)(trie, rows))
    assert padded.shape == (rows.shape[0], trie.depth, max(trie.level_sizes))
    for d, size in enumerate(trie.level_sizes):
        assert not padded[:, d, size:].any()
    return [padded[:, d, :size] for d, size in enumerate(trie.level_sizes)]


def prefixes(codes, d):
    return {tuple(row[:d]) for row in codes.tolist()}


def random_rows(rng, codes, level_sizes, n):
    """Real SIDs whose tail from a random position on is re-drawn: real and dead prefixes."""
    rows = codes[rng.integers(0, len(codes), n)].copy()
    cut = rng.integers(0, len(level_sizes) + 1, n)
    for l, size in enumerate(level_sizes):
        redraw = l >= cut
        rows[redraw, l] = rng.integers(0, size, int(redraw.sum()))
    return rows.astype(np.int32)


@pytest.mark.parametrize("num_items,level_sizes,kind", CASES)
def test_masks_equal_brute_force(num_items, level_sizes, kind):
    rng = np.random.default_rng(num_items)
    codes = make_codes(rng, num_items, level_sizes, kind)
    trie = SidTrie.build(codes, level_sizes)
    trie.check()
    assert trie.num_items == num_items
    assert trie.num_sids == len(prefixes(codes, len(level_sizes)))
    rows = random_rows(rng, codes, level_sizes, 64)
    masks = masks_along(trie, jnp.asarray(rows))
    for d in range(len(level_sizes)):
        pre, mask = rows[:, :d], np.asarray(masks[d])
        real_next = prefixes(codes, d + 1)
        real_here = prefixes(codes, d)
        for row, m in zip(pre.tolist(), mask):
            expected = {c for c in range(level_sizes[d]) if tuple(row) + (c,) in real_next}
            assert set(np.flatnonzero(m).tolist()) == expected
            assert (tuple(row) in real_here) == bool(m.any())


@pytest.mark.parametrize("num_items,level_sizes,kind", CASES)
def test_follow_from_the_step_runs_equals_the_binary_search(num_items, level_sizes, kind):
    """Decoding reads each step's next nodes off the runs it masked with (`follow`), the search
    and the leaf walk use `advance`: the same nodes on real and dead prefixes, dead rows and
    codes that are not children, with rows re-ordered like beam parents, and at the root."""
    rng = np.random.default_rng(7 + num_items)
    codes = make_codes(rng, num_items, level_sizes, kind)
    trie = SidTrie.build(codes, level_sizes)
    rows = jnp.asarray(random_rows(rng, codes, level_sizes, 48))
    parent = jnp.asarray(rng.permutation(48).astype(np.int32))

    @jax.jit
    def both(trie, rows, parent):
        state, pairs = trie_lib.root_state(trie, rows.shape[0]), []
        for level in range(trie.depth):
            runs = trie_lib.child_runs(trie, state, level)
            mask = trie_lib.allowed_mask(trie, state, level)
            pairs.append((trie_lib.follow(runs, rows[:, level], parent),
                          trie_lib.advance(trie, state[parent], rows[:, level], level),
                          jnp.broadcast_to(trie_lib.runs_mask(runs), mask.shape), mask))
            state = trie_lib.advance(trie, state, rows[:, level], level)
        return pairs

    for level, (followed, walked, from_runs, mask) in enumerate(both(trie, rows, parent)):
        np.testing.assert_array_equal(np.asarray(followed), np.asarray(walked), f"level {level}")
        np.testing.assert_array_equal(np.asarray(from_runs), np.asarray(mask))
    assert (np.asarray(walked) >= 0).any()
    if trie.num_sids < np.prod(level_sizes):  # some code tuples are no item's: dead rows too
        assert (np.asarray(walked) < 0).any()


@pytest.mark.parametrize("num_items,level_sizes,kind", CASES[1:3])
def test_paths_allowed_by_masks_are_exactly_the_real_sids(num_items, level_sizes, kind):
    """Over every possible code tuple: a tuple passes all masks iff it is a real item's SID."""
    codes = make_codes(np.random.default_rng(1), num_items, level_sizes, kind)
    trie = SidTrie.build(codes, level_sizes)
    every = np.array(list(itertools.product(*[range(s) for s in level_sizes])), dtype=np.int32)
    masks = masks_along(trie, jnp.asarray(every))
    passes = np.all(
        [np.asarray(m)[np.arange(len(every)), every[:, d]] for d, m in enumerate(masks)], axis=0
    )
    real = prefixes(codes, len(level_sizes))
    np.testing.assert_array_equal(passes, [tuple(r) in real for r in every.tolist()])
    valid = np.asarray(trie_lib.is_valid(trie, jnp.asarray(every)))
    np.testing.assert_array_equal(valid, passes)
    np.testing.assert_array_equal(trie.all_sids(), every[passes])  # both lexicographic


def test_is_valid_rejects_out_of_range_codes():
    codes = np.array([[0, 0, 0], [4, 3, 2], [1, 2, 1]])
    trie = SidTrie.build(codes, (5, 4, 3))
    queries = jnp.asarray(
        [[5, 0, 0], [0, -1, 0], [0, 0, 99], [4, 3, 2], [1, 2, 1], [1, 2, 2]], dtype=jnp.int32
    )
    np.testing.assert_array_equal(
        jax.jit(trie_lib.is_valid)(trie, queries), [False, False, False, True, True, False]
    )


def test_sid_items_groups_collisions_by_popularity():
    codes = np.array([[1, 2], [0, 1], [1, 2], [1, 2], [0, 0]])
    popularity = np.array([0.1, 5.0, 0.9, 0.5, 1.0])
    trie = SidTrie.build(codes, (2, 3), popularity=popularity)
    trie.check()
    got = trie.sid_items(np.array([[1, 2], [0, 1], [1, 1], [0, 0]]))
    assert [g.tolist() for g in got] == [[2, 3, 0], [1], [], [4]]
    # Without popularity, ties keep ascending item index.
    plain = SidTrie.build(codes, (2, 3))
    assert plain.sid_items(np.array([[1, 2]]))[0].tolist() == [0, 2, 3]


def test_each_item_reaches_a_leaf_that_lists_it():
    level_sizes = (8, 4, 4)
    codes = make_codes(np.random.default_rng(5), 50, level_sizes, "uniform")
    trie = SidTrie.build(codes, level_sizes)
    masks = masks_along(trie, jnp.asarray(codes, dtype=jnp.int32))
    for level, mask in enumerate(masks):
        assert np.all(np.asarray(mask)[np.arange(50), codes[:, level]])
    leaves = np.asarray(jax.jit(trie_lib.leaf_ids)(trie, jnp.asarray(codes, dtype=jnp.int32)))
    starts, order = np.asarray(trie.leaf_item_start), np.asarray(trie.item_order)
    for item, leaf in enumerate(leaves):
        assert item in order[starts[leaf] : starts[leaf + 1]]
    for item, listed in enumerate(trie.sid_items(codes)):
        assert item in listed and np.all(codes[listed] == codes[item])


@pytest.mark.parametrize(
    "codes,level_sizes,message",
    [
        (np.zeros((0, 3), int), (2, 2, 2), "non-empty"),
        (np.zeros((4, 3), int), (2, 2), "level_sizes"),
        (np.full((4, 2), 2), (2, 2), "out of range"),
        (np.full((4, 2), -1), (2, 2), "out of range"),
        (np.zeros((4, 2), float), (2, 2), "integers"),
    ],
)
def test_bad_input_raises(codes, level_sizes, message):
    with pytest.raises(ValueError, match=message):
        SidTrie.build(codes, level_sizes)


def test_check_catches_a_dead_branch():
    trie = SidTrie.build(np.array([[0, 1], [1, 0]]), (2, 2))
    broken = trie.replace(child_start=(trie.child_start[0], jnp.asarray([0, 1, 1], jnp.int32)))
    with pytest.raises(ValueError):
        broken.check()
    with pytest.raises(ValueError, match="level"):
        trie_lib.allowed_mask(trie, trie_lib.root_state(trie, 1), 2)
