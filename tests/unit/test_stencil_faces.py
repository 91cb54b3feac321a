"""The faces forms of the Numba stencil kernels (``fn.dagmpi_faces``) against the
padded kernels, for blocks of every small size (edges of one element included)."""

import numpy as np
import pytest

from dagmpi.kernels.cpu import stencil


def _faces(c: np.ndarray) -> list:
    """Periodic faces of a single block: low then high per axis."""
    out = []
    for a, n in enumerate(c.shape):
        lo, hi = [slice(None)] * c.ndim, [slice(None)] * c.ndim
        lo[a], hi[a] = slice(n - 1, n), slice(0, 1)
        out += [np.ascontiguousarray(c[tuple(lo)]), np.ascontiguousarray(c[tuple(hi)])]
    return out


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (5, 1), (2, 2), (7, 9), (1, 1, 1), (3, 1, 2), (2, 3, 1),
                                   (1, 4, 5), (5, 6, 7)])
def test_faces_forms_match_the_padded_kernels(shape):
    c = np.random.default_rng(len(shape) * 100 + sum(shape)).standard_normal(shape)
    p = np.pad(c, 1, mode="wrap")
    np.testing.assert_array_equal(stencil.laplacian.dagmpi_faces(c, *_faces(c)), stencil.laplacian(p))
    if c.ndim == 2:
        np.testing.assert_array_equal(stencil.heat5_step.dagmpi_faces(c, *_faces(c), 0.3),
                                      stencil.heat5_step(p, 0.3))


def test_faces_form_of_laplacian_refuses_other_dimensions():
    with pytest.raises(ValueError, match="2-D or 3-D"):
        stencil.laplacian.dagmpi_faces(np.zeros(4), np.zeros(1), np.zeros(1))


@pytest.mark.parametrize("shape", [(2, 1, 1), (2, 1, 5), (2, 4, 1), (2, 7, 9), (2, 3, 4, 5), (2, 1, 1, 1)])
def test_grayscott_faces_form_matches_the_padded_kernel(shape):
    from dagmpi.kernels.cpu import grayscott

    kw = dict(du=0.16, dv=0.08, f=0.035, k=0.065, dt=1.0)
    x = np.random.default_rng(sum(shape)).random(shape)
    p = np.pad(x, [(0, 0)] + [(1, 1)] * (x.ndim - 1), mode="wrap")
    faces = _faces(x)[2:]  # (no faces along the two fields' axis: depth 0 there)
    np.testing.assert_array_equal(grayscott.step.dagmpi_faces(x, *faces, **kw), grayscott.step(p, **kw))
    with pytest.raises(ValueError, match="faces form"):
        grayscott.step.dagmpi_faces(x, *faces[:2], **kw)
