"""Block arithmetic of dagmpi.array (pure: no runtime)."""

import itertools

import numpy as np
import pytest

from dagmpi.array import grid as g


def test_chunks_from_block_lengths():
    assert g.normalize_chunks((4, 5), (10, 10)) == ((4, 4, 2), (5, 5))
    assert g.normalize_chunks(3, (7,)) == ((3, 3, 1),)
    assert g.normalize_chunks((-1, None), (3, 4)) == ((3,), (4,))
    assert g.normalize_chunks(((2, 3), 2), (5, 4)) == ((2, 3), (2, 2))
    assert g.normalize_chunks(4, (0,)) == ((0,),)


@pytest.mark.parametrize("blocks, msg", [((0, 2), "must be positive"), ((2,), "has 1 entries"),
                                         (((2, 2), 2), "do not add up"), ("big", "must be an int")])
def test_bad_blocks_are_refused_clearly(blocks, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        g.normalize_chunks(blocks, (5, 4))


def test_auto_chunks_bound_block_bytes_and_feed_every_worker():
    chunks = g.auto_chunks((8192, 8192), 8, nworkers=4, target=32 << 20)
    assert all(max(c) * 8 * 8192 // len(chunks[1]) for c in chunks)
    assert max(chunks[0]) * max(chunks[1]) * 8 <= 32 << 20
    assert np.prod(g.nblocks(chunks)) >= 8
    assert g.auto_chunks((10,), 8, nworkers=4) == ((10,),)  # tiny: one block


def test_offsets_slices_and_shapes():
    chunks = ((4, 4, 2), (5, 5))
    assert g.offsets(chunks[0]) == (0, 4, 8, 10)
    assert g.block_slices(chunks, (2, 1)) == (slice(8, 10), slice(5, 10))
    assert g.block_shape(chunks, (2, 1)) == (2, 5)
    assert list(g.block_indices(chunks))[:3] == [(0, 0), (0, 1), (1, 0)]
    assert g.nominal_blocks(chunks) == (4, 5)


@pytest.mark.parametrize("w", [1, 2, 3, 4, 5, 6, 7, 12, 16])
@pytest.mark.parametrize("grid", [(8, 8), (3, 5), (1, 9), (16, 1), (4,), (2, 3, 4)])
def test_block_cyclic_owners_are_balanced(w, grid):
    workers = list(range(1, w + 1))
    own = g.owners(grid, workers)
    assert own.shape == grid
    counts = np.bincount(own.ravel(), minlength=w + 1)[1:]
    n = int(np.prod(grid))
    used = min(w, n)
    assert (counts > 0).sum() == used  # every worker that could hold a block holds one
    assert counts.max() - counts[counts > 0].min() <= max(1, int(np.ceil(n / w)) // 2 + 1)


def test_square_process_grid_for_square_block_grids():
    assert g.process_grid(4, (8, 8)) == (2, 2)
    assert g.process_grid(6, (6, 6)) in ((2, 3), (3, 2))
    own = g.owners((4, 4), [1, 2, 3, 4])
    assert own[0, 0] == own[2, 2] == own[0, 2] and own[0, 0] != own[1, 0]


@pytest.mark.parametrize("n, sizes", [(10, (4, 4, 2)), (7, (3, 3, 1)), (5, (5,))])
def test_slice_axis_matches_numpy_for_every_slice(n, sizes):
    data = np.arange(n)
    blocks = np.split(data, np.cumsum(sizes)[:-1])
    for start, stop, step in itertools.product([None, 0, 1, 3, -2, 9, -12], [None, 2, -1, 8, 15],
                                               [None, 1, 2, 3, -1, -2]):
        key = slice(start, stop, step)
        pieces = g.slice_axis(sizes, key)
        got = np.concatenate([blocks[b][loc] for b, loc, _ in pieces]) if pieces else np.arange(0)
        np.testing.assert_array_equal(got, data[key], err_msg=str(key))
        assert sum(p[2] for p in pieces) == len(data[key])


def test_box_pieces_cover_the_box_once():
    chunks = ((4, 4, 2), (3, 3))
    x = np.arange(60).reshape(10, 6)
    box = (slice(3, 9), slice(1, 5))
    out = np.full((6, 4), -1)
    for idx, inner, dest in g.box_pieces(chunks, box):
        block = x[g.block_slices(chunks, idx)]
        out[dest] = block[inner]
    np.testing.assert_array_equal(out, x[box])


def test_index_normalisation():
    assert g.normalize_index((Ellipsis, 1), (3, 4, 5)) == (slice(None), slice(None), 1)
    assert g.normalize_index((-1,), (3, 4)) == (2, slice(None))
    assert g.normalize_index((None, 0), (3,)) == (None, 0)
    with pytest.raises(IndexError, match="out of bounds for axis 1"):
        g.normalize_index((0, 4), (3, 4))
    with pytest.raises(IndexError, match="too many indices"):
        g.normalize_index((0, 0, 0), (3, 4))
    with pytest.raises(IndexError, match="only basic indexing"):
        g.normalize_index(([0, 1],), (3,))


def test_broadcast_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\) \(5,\)"):
        g.broadcast_shapes((3, 4), (5,))


def test_locate():
    assert g.locate((4, 4, 2), 0) == (0, 0)
    assert g.locate((4, 4, 2), 4) == (1, 0)
    assert g.locate((4, 4, 2), 9) == (2, 1)
