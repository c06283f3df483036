import numpy as np
import pytest

from onesearch_jax.sid.vocab import SidVocab


def test_levels_get_disjoint_ranges_after_text():
    v = SidVocab(100, (8, 4, 2))
    assert v.level_offsets == (100, 108, 112) and v.vocab_size == 114
    codes = np.array([[7, 3, 1], [0, 0, 0]])
    tokens = v.to_tokens(codes)
    np.testing.assert_array_equal(tokens, [[107, 111, 113], [100, 108, 112]])
    np.testing.assert_array_equal(v.to_codes(tokens), codes)


def test_out_of_range_codes_are_refused():
    v = SidVocab(10, (4, 4))
    with pytest.raises(ValueError, match="out of range"):
        v.to_tokens(np.array([[4, 0]]))
    with pytest.raises(ValueError, match="codes have 3 levels, vocabulary has 2"):
        v.to_tokens(np.array([[1, 2, 3]]))
