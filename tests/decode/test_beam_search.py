"""Beam search against exhaustive enumeration of a toy model's SID distribution."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from onesearch_jax.decode.beam_search import beam_search
from prefix_table_model import PrefixTableModel
from onesearch_jax.sid import trie as trie_lib
from onesearch_jax.sid.trie import SidTrie

LEVEL_SIZES = (4, 3, 5)  # 60 possible SIDs, 12 prefixes before the last level
LEVEL_OFFSETS = (6, 10, 13)  # 6 text tokens, BOS = 1, 2 spare ids at the end
VOCAB, BOS, BATCH = 20, 1, 2


MODEL = PrefixTableModel.random(0, BATCH, LEVEL_OFFSETS, LEVEL_SIZES, VOCAB)


def model():
    return MODEL


@functools.lru_cache(maxsize=None)
def real_trie():
    rng = np.random.default_rng(1)
    sids = np.array(np.meshgrid(*[range(s) for s in LEVEL_SIZES], indexing="ij")).reshape(3, -1).T
    chosen = sids[rng.choice(len(sids), 14, replace=False)]
    items = chosen[rng.integers(0, 14, 40)]  # 40 items, many sharing a SID
    return SidTrie.build(np.concatenate([chosen, items]), LEVEL_SIZES)


@functools.partial(
    jax.jit, static_argnames=("beam_size", "constrained", "score_over", "length_penalty", "tiled")
)
def run(trie, beam_size, constrained=True, score_over="level", length_penalty=None, tiled=False):
    m = model()
    state = m.initial_state()
    if tiled:
        state = jax.tree_util.tree_map(lambda x: jnp.repeat(x, beam_size, axis=0), state)
    return beam_search(
        m.logits_fn,
        state,
        batch_size=BATCH,
        beam_size=beam_size,
        bos_id=BOS,
        level_offsets=LEVEL_OFFSETS,
        level_sizes=LEVEL_SIZES,
        trie=trie,
        constrained=constrained,
        score_over=score_over,
        length_penalty=length_penalty,
    )


def brute_force_top(k, score_over="level", allowed=None):
    sids, logp = model().exact_log_probs(score_over)
    if allowed is not None:
        logp = np.where(allowed[None, :], logp, -np.inf)
    order = np.argsort(-logp, axis=1, kind="stable")[:, :k]
    return sids[order], np.take_along_axis(logp, order, axis=1)


@pytest.mark.parametrize("score_over", ["level", "vocab"])
def test_wide_unconstrained_beam_equals_brute_force(score_over):
    result = run(None, beam_size=12, score_over=score_over)  # 12 >= prefixes per level: exact
    codes, scores = brute_force_top(12, score_over)
    np.testing.assert_array_equal(result.codes, codes)
    np.testing.assert_allclose(result.scores, scores, rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(result.valid))


def test_wide_constrained_beam_equals_brute_force_over_real_sids():
    trie = real_trie()
    sids, _ = model().exact_log_probs()
    allowed = np.asarray(trie_lib.is_valid(trie, jnp.asarray(sids, dtype=jnp.int32)))
    assert allowed.sum() == 14
    result = run(trie, beam_size=16)  # more beams than real SIDs: the last 2 are unfillable
    codes, scores = brute_force_top(14, allowed=allowed)
    np.testing.assert_array_equal(np.asarray(result.codes)[:, :14], codes)
    np.testing.assert_allclose(np.asarray(result.scores)[:, :14], scores, rtol=1e-5, atol=1e-5)
    valid = np.asarray(result.valid)
    assert np.all(valid[:, :14]) and not np.any(valid[:, 14:])
    assert np.all(np.isneginf(np.asarray(result.scores)[:, 14:]))


def test_narrow_constrained_beam_returns_distinct_real_sids_with_true_scores():
    trie = real_trie()
    result = run(trie, beam_size=4)
    codes, scores = np.asarray(result.codes), np.asarray(result.scores)
    assert np.all(np.asarray(result.valid))
    assert np.all(np.asarray(trie_lib.is_valid(trie, jnp.asarray(codes.reshape(-1, 3)))))
    assert np.all(np.diff(scores, axis=1) <= 0)
    sids, logp = model().exact_log_probs()
    index = {tuple(s): i for i, s in enumerate(sids.tolist())}
    for b in range(BATCH):
        assert len({tuple(c) for c in codes[b].tolist()}) == 4
        expected = [logp[b, index[tuple(c)]] for c in codes[b].tolist()]
        np.testing.assert_allclose(scores[b], expected, rtol=1e-5, atol=1e-5)


def test_unconstrained_beam_with_trie_reports_invalid_sids():
    trie = real_trie()
    result = run(trie, beam_size=12, constrained=False)
    codes, _ = brute_force_top(12)
    np.testing.assert_array_equal(result.codes, codes)  # the trie did not change the search
    expected_valid = trie_lib.is_valid(trie, jnp.asarray(codes.reshape(-1, 3), jnp.int32))
    np.testing.assert_array_equal(result.valid, np.asarray(expected_valid).reshape(BATCH, 12))
    assert not np.all(np.asarray(result.valid))  # 14 of 60 SIDs are real: some top-12 are not


def test_few_first_codes_give_no_duplicate_beams():
    # Only first codes 0 and 3 exist; 8 beams must not repeat a SID from identical start beams.
    codes = np.array([[0, 0, 0], [0, 1, 4], [0, 2, 2], [3, 0, 1], [3, 0, 2], [3, 2, 0]])
    trie = SidTrie.build(codes, LEVEL_SIZES)
    result = run(trie, beam_size=8)
    valid = np.asarray(result.valid)
    assert valid.sum(axis=1).tolist() == [6, 6]
    for b in range(BATCH):
        got = {tuple(c) for c in np.asarray(result.codes)[b][valid[b]].tolist()}
        assert got == {tuple(c) for c in codes.tolist()}


def test_pretiled_state_and_length_penalty():
    plain = run(None, beam_size=6)
    tiled = run(None, beam_size=6, tiled=True)
    np.testing.assert_array_equal(plain.codes, tiled.codes)
    penalised = run(None, beam_size=6, length_penalty=1.0)
    np.testing.assert_array_equal(plain.codes, penalised.codes)
    np.testing.assert_allclose(penalised.scores, np.asarray(plain.scores) / 3.0, rtol=1e-6)


def test_bad_arguments_raise():
    m = model()
    kwargs = dict(
        batch_size=BATCH,
        beam_size=2,
        bos_id=BOS,
        level_offsets=LEVEL_OFFSETS,
        level_sizes=LEVEL_SIZES,
    )
    with pytest.raises(ValueError, match="level_sizes"):
        beam_search(m.logits_fn, m.initial_state(), **{**kwargs, "level_sizes": (4, 3)})
    with pytest.raises(ValueError, match="trie.level_sizes"):
        beam_search(m.logits_fn, m.initial_state(), trie=SidTrie.build([[0, 0]], (4, 3)), **kwargs)
    with pytest.raises(ValueError, match="leading axis"):
        beam_search(m.logits_fn, {"query": jnp.zeros(3, jnp.int32)}, **kwargs)
    with pytest.raises(ValueError, match="score_over"):
        beam_search(m.logits_fn, m.initial_state(), score_over="all", **kwargs)


def test_leaf_ids_from_the_search_list_the_same_items_as_walking_the_codes():
    from onesearch_jax.decode.retrieve import items_from_beams
    from onesearch_jax.sid.trie import LeafItems

    trie = real_trie()
    result = run(trie, beam_size=12, constrained=False)  # some beams are not real SIDs
    codes, valid = np.asarray(result.codes), np.asarray(result.valid)
    leaves = np.asarray(result.leaves)
    walked = np.asarray(trie_lib.leaf_ids(trie, jnp.asarray(codes.reshape(-1, 3))))
    np.testing.assert_array_equal(leaves, np.where(valid, walked.reshape(BATCH, 12), -1))
    table = LeafItems.from_trie(trie)
    ranked, top3 = items_from_beams(table, leaves, k=100), items_from_beams(table, leaves, k=3)
    for b in range(BATCH):  # by hand: the items of each valid beam's SID, in beam order
        expected = []
        for sid_items in trie.sid_items(codes[b][valid[b]]):
            expected += [i for i in sid_items.tolist() if i not in expected]
        assert len(expected) > 3 and ranked[b] == expected and top3[b] == expected[:3]
    assert items_from_beams(table, np.full((1, 4), -1), k=5) == [[]]
    free = run(None, beam_size=4)
    assert np.all(np.asarray(free.leaves) == -1)  # no trie: no leaf ids
