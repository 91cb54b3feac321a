"""Numba-compiled fused programs (kernels/cpu/fused.py) against numpy's evaluation."""

import numpy as np
import pytest

from dagmpi.array import blockops as ops
from dagmpi.kernels.cpu import fused

rng = np.random.default_rng(0)
X = rng.standard_normal((37, 29))
Y = rng.standard_normal((37, 29))
I = rng.integers(-100, 100, size=(37, 29))


def u(f, *children):
    return ("ufunc", f, (), *children)


L0, L1 = ("leaf", 0), ("leaf", 1)
PROGRAMS = [
    u(np.power, u(np.add, u(np.multiply, L0, ("const", 2)), ("const", 1)), ("const", 2)),
    u(np.subtract, u(np.sqrt, u(np.absolute, L0)), u(np.true_divide, L1, ("const", 3.0))),
    u(np.greater, L0, L1),
    u(np.multiply, u(np.exp, u(np.negative, L0)), u(np.cos, L1)),
]


@pytest.mark.parametrize("prog", PROGRAMS, ids=range(len(PROGRAMS)))
def test_compiled_map_and_reductions_match_numpy(prog):
    want = np.asarray(ops.evaluate(prog, [X, Y]))
    got = fused.run_map(prog, want.dtype, [X, Y], X.shape)
    assert got is not None, "this program should compile"
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
    assert got.dtype == want.dtype
    if want.dtype == np.float64:
        np.testing.assert_allclose(fused.run_reduce(prog, "sum", want.dtype, [X, Y], X.shape), want.sum(), rtol=1e-12)
        assert fused.run_reduce(prog, "max", want.dtype, [X, Y], X.shape) == want.max()
        assert fused.run_reduce(prog, "min", want.dtype, [X, Y], X.shape) == want.min()


def test_integer_programs_compile_where_exact():
    prog = u(np.add, u(np.multiply, L0, ("const", 3)), ("const", -7))
    got = fused.run_map(prog, np.int64, [I], I.shape)
    np.testing.assert_array_equal(got, I * 3 - 7)
    assert fused.run_reduce(prog, "sum", np.int64, [I], I.shape) == (I * 3 - 7).sum()


@pytest.mark.parametrize("prog, leaves", [
    (u(np.floor_divide, L0, ("const", 0)), [I]),                # numpy and Numba differ on x // 0
    (u(np.add, L0, ("const", 1)), [X.astype(np.float32)]),      # float32: promotion rules differ
    (u(np.add, L0, ("const", 1)), [X[:, :1]]),                  # a broadcast leaf
    (u(np.add, L0, ("const", 1)), [np.asfortranarray(X)]),      # not C order
    (("call", np.sort, (), L0), [X]),                           # map_blocks
])
def test_unsafe_programs_are_left_to_numpy(prog, leaves):
    assert fused.run_map(prog, np.float64, leaves, X.shape) is None


def test_nan_propagates_like_numpy():
    Z = X.copy()
    Z[5, 6] = np.nan
    prog = u(np.add, L0, ("const", 1.0))
    assert np.isnan(fused.run_reduce(prog, "max", np.float64, [Z], Z.shape))
    assert np.isnan(fused.run_reduce(prog, "min", np.float64, [Z], Z.shape))


def test_blockops_use_the_compiled_kernel_and_numpy_gives_the_same(monkeypatch):
    prog = PROGRAMS[0]
    fast = ops.fused(prog, X.shape, "<f8", X)
    monkeypatch.setattr(ops, "NUMBA", False)
    slow = ops.fused(prog, X.shape, "<f8", X)
    np.testing.assert_allclose(fast, slow, rtol=1e-15)
