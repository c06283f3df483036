"""SID sampling against the exact distribution of an enumerable toy model."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from prefix_table_model import PrefixTableModel
from onesearch_jax.decode.sampling import sample_sids
from onesearch_jax.sid import trie as trie_lib
from onesearch_jax.sid.trie import SidTrie

LEVEL_SIZES = (4, 3, 5)
LEVEL_OFFSETS = (6, 10, 13)
VOCAB, BOS, BATCH = 20, 1, 2
MODEL = PrefixTableModel.random(2, BATCH, LEVEL_OFFSETS, LEVEL_SIZES, VOCAB, scale=1.0)
REAL = np.array([[0, 0, 0], [0, 0, 4], [0, 2, 1], [1, 1, 1], [3, 0, 2], [3, 2, 0], [3, 2, 3]])
TRIE = SidTrie.build(np.concatenate([REAL, REAL[:3]]), LEVEL_SIZES)


@functools.partial(jax.jit, static_argnames=("group_size", "temperature", "constrained"))
def draw(rng, trie, group_size, temperature, constrained=True):
    return sample_sids(
        MODEL.logits_fn,
        MODEL.initial_state(),
        rng,
        batch_size=BATCH,
        group_size=group_size,
        temperature=temperature,
        bos_id=BOS,
        level_offsets=LEVEL_OFFSETS,
        level_sizes=LEVEL_SIZES,
        trie=trie,
        constrained=constrained,
    )


def sid_index(codes):
    return (codes[..., 0] * LEVEL_SIZES[1] + codes[..., 1]) * LEVEL_SIZES[2] + codes[..., 2]


def constrained_probs(temperature=1.0):
    """float[B, 60]: per-step softmax over allowed codes only, multiplied along each real SID."""
    probs = np.zeros((BATCH, 60))
    real = {tuple(r) for r in REAL.tolist()}
    for sid in real:
        prefix = 0
        for l, (off, size) in enumerate(zip(LEVEL_OFFSETS, LEVEL_SIZES)):
            allowed = [c for c in range(size) if any(r[:l] == sid[:l] and r[l] == c for r in real)]
            logits = (
                np.asarray(MODEL.tables[l])[:, prefix, off : off + size][:, allowed] / temperature
            )
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p = p / p.sum(axis=1, keepdims=True)
            probs[:, sid_index(np.array(sid))] = (
                probs[:, sid_index(np.array(sid))] if l else 1.0
            ) * p[:, allowed.index(sid[l])]
            prefix = prefix * size + sid[l]
    return probs


def assert_frequencies_match(codes, probs):
    """Chi-square goodness of fit per query, bins with expected count < 5 merged."""
    for b in range(BATCH):
        counts = np.bincount(sid_index(codes[b]), minlength=60)
        possible = probs[b] > 0
        assert counts[~possible].sum() == 0
        counts, expected = counts[possible], probs[b][possible] * counts.sum()
        small = expected < 5
        obs = np.append(counts[~small], counts[small].sum())
        exp = np.append(expected[~small], expected[small].sum())
        obs, exp = obs[exp > 0], exp[exp > 0] * obs.sum() / exp.sum()
        assert stats.chisquare(obs, exp).pvalue > 1e-3


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_free_sample_frequencies_match_model(temperature):
    result = draw(jax.random.key(0), TRIE, 3000, temperature, constrained=False)
    _, logp = MODEL.exact_log_probs("level", temperature)
    assert_frequencies_match(np.asarray(result.codes), np.exp(logp))
    # draw_logprobs are those of the tempered distribution drawn from: the SID's exact log-prob.
    codes = np.asarray(result.codes)
    np.testing.assert_allclose(np.asarray(result.draw_logprobs).sum(axis=2),
                               np.take_along_axis(logp, sid_index(codes), axis=1),
                               rtol=1e-5, atol=1e-5)


def test_constrained_samples_are_real_and_follow_masked_distribution():
    result = draw(jax.random.key(1), TRIE, 3000, 1.0)
    codes = np.asarray(result.codes)
    assert np.all(np.asarray(result.valid))
    assert np.all(np.asarray(trie_lib.is_valid(TRIE, jnp.asarray(codes.reshape(-1, 3)))))
    assert_frequencies_match(codes, constrained_probs())
    # token_logprobs are the unmasked model log-probs at T=1: they sum to the exact SID log-prob.
    _, logp = MODEL.exact_log_probs("level")
    summed = np.asarray(result.token_logprobs).sum(axis=2)
    np.testing.assert_allclose(
        summed, np.take_along_axis(logp, sid_index(codes), axis=1), rtol=1e-5, atol=1e-5
    )
    # draw_logprobs are those of the masked distribution: the SID's probability inside the trie.
    np.testing.assert_allclose(
        np.asarray(result.draw_logprobs).sum(axis=2),
        np.log(np.take_along_axis(constrained_probs(), sid_index(codes), axis=1)),
        rtol=1e-5, atol=1e-5,
    )


def test_unconstrained_samples_with_trie_report_validity():
    result = draw(jax.random.key(2), TRIE, 3000, 1.0, constrained=False)
    codes = np.asarray(result.codes).reshape(-1, 3)
    real = {tuple(r) for r in REAL.tolist()}
    np.testing.assert_array_equal(
        np.asarray(result.valid).reshape(-1), [tuple(c) in real for c in codes.tolist()]
    )
    assert not np.all(np.asarray(result.valid))


def test_low_temperature_approaches_greedy():
    greedy = draw(jax.random.key(3), None, 64, 0.0)
    assert np.all(np.asarray(greedy.valid))  # no trie: validity unknown, reported True
    greedy = np.asarray(greedy.codes)
    cold = np.asarray(draw(jax.random.key(4), None, 64, 1e-3).codes)
    tables = [np.asarray(t) for t in MODEL.tables]
    for b in range(BATCH):
        prefix, path = 0, []
        for l, (off, size) in enumerate(zip(LEVEL_OFFSETS, LEVEL_SIZES)):
            c = int(np.argmax(tables[l][b, prefix, off : off + size]))
            path.append(c)
            prefix = prefix * size + c
        assert np.all(greedy[b] == path) and np.all(cold[b] == path)
    # Constrained greedy follows the masked argmax and stays on real SIDs.
    assert np.all(np.asarray(draw(jax.random.key(5), TRIE, 64, 0.0).valid))


def test_bad_temperature_raises():
    with pytest.raises(ValueError, match="temperature"):
        sample_sids(
            MODEL.logits_fn,
            MODEL.initial_state(),
            jax.random.key(0),
            batch_size=BATCH,
            group_size=2,
            temperature=-1.0,
            bos_id=BOS,
            level_offsets=LEVEL_OFFSETS,
            level_sizes=LEVEL_SIZES,
        )
