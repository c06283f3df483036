import numpy as np
import pytest

from onesearch_jax.decode.cells import CellIndex

# 6 items over 3 levels of sizes (3, 4, 2); items 1 and 4 share a whole SID.
CODES = np.array([[0, 1, 0], [2, 3, 1], [0, 1, 1], [0, 2, 0], [2, 3, 1], [1, 0, 0]])


def test_items_of_a_prefix_at_every_depth():
    cells = CellIndex(CODES, (3, 4, 2))
    assert cells.items([0]).tolist() == [0, 2, 3]
    assert cells.items([0, 1]).tolist() == [0, 2]
    assert cells.items([2, 3, 1]).tolist() == [1, 4]
    assert cells.items([1, 3]).tolist() == []
    with pytest.raises(ValueError, match="1..3 codes"):
        cells.items([0, 1, 0, 0])


def test_beam_cells_follow_beam_order_and_list_each_cell_once():
    cells = CellIndex(CODES, (3, 4, 2))
    # Query 0's beams: [0,2,0], [2,3,1], [0,1,1]; the third is invalid for query 1.
    codes = np.array([[[0, 2, 0], [2, 3, 1], [0, 1, 1]],
                      [[1, 0, 0], [0, 1, 0], [2, 3, 1]]])
    valid = np.array([[True, True, True], [True, True, False]])
    level1 = cells.beam_cells(codes, valid, 1)
    assert [c.tolist() for c in level1] == [[0, 2, 3, 1, 4], [5, 0, 2, 3]]
    level2 = cells.beam_cells(codes, valid, 2)
    assert [c.tolist() for c in level2] == [[3, 1, 4, 0, 2], [5, 0, 2]]
    # Depth L: the beams' own items (collisions listed together).
    level3 = cells.beam_cells(codes, valid, 3)
    assert [c.tolist() for c in level3] == [[3, 1, 4, 2], [5, 0]]
    none = cells.beam_cells(codes, np.zeros_like(valid), 2)
    assert [c.tolist() for c in none] == [[], []]
    with pytest.raises(ValueError, match="cell level"):
        cells.beam_cells(codes, valid, 0)


def test_bad_codes_are_refused():
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        CellIndex(CODES[:, :2], (3, 4, 2))
