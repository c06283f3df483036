"""Frozen MiniLM token states: cached == a fresh forward, long texts truncated and counted."""
import jax.numpy as jnp
import numpy as np
import pytest

from onesearch_jax.data.state_cache import StateCache
from onesearch_jax.model import minilm

pytest.importorskip(minilm.PACKAGE, reason=minilm.INSTALL_HINT)

from onesearch_jax.data.minilm_states import MiniLMStates  # noqa: E402

TEXTS = ["cordless drill", "sugar-free dark chocolate for kids without nuts", "hose"]


@pytest.fixture(scope="module")
def states():
    return MiniLMStates(max_len=12, batch_size=4)


def _fresh(states, text):
    """MiniLM on the text alone, unpadded: the reference the bucketed, cached path must equal."""
    ids = states.pieces([text])[0]
    tok = jnp.asarray([ids], jnp.int32)
    return np.asarray(states.model.apply(states.params, tok, jnp.ones_like(tok)))[0]


def test_cached_states_equal_a_fresh_minilm_forward(states, tmp_path):
    cache = StateCache(str(tmp_path), states)
    assert cache.ensure(TEXTS) == 3
    reread = StateCache(str(tmp_path), states)  # from disk, memory-mapped
    for text in TEXTS:
        want = _fresh(states, text)
        np.testing.assert_allclose(reread.get(text), want, atol=1e-5)
        np.testing.assert_allclose(states.encode([text])[0], want, atol=1e-5)
    # Mean-pooled, the states are the sentence vector the SIDs quantise.
    vec = reread.get("cordless drill").mean(0)
    emb = minilm.MiniLMEmbedder(max_len=12).embed(["cordless drill"])[0]
    np.testing.assert_allclose(vec / np.linalg.norm(vec), emb, atol=1e-5)


def test_a_text_longer_than_the_limit_is_truncated_and_counted_not_dropped(states):
    before = states.truncated
    short, long_ = states.encode(["hose", " ".join(["drill"] * 40)])
    assert states.truncated == before + 1
    assert len(short) == 3 and len(long_) == states.max_len
    ids = states.pieces([" ".join(["drill"] * 40)])[0]
    assert len(ids) == 12 and ids[-1] == states.tokenizer.token_to_id("[SEP]")
