"""GPU kernels (kernels/gpu) against their CPU twins (kernels/cpu), without a GPU.

numba.cuda kernels run under the CUDA simulator in a subprocess (the simulator
must be chosen before numba.cuda is first imported); the CuPy tile kernels run
with numpy/scipy in place of CuPy/cupyx; the CuPy fused kernels are checked as
generated source.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from dagmpi.array import blockops as ops
from dagmpi.kernels.cpu import tiles as cpu_tiles
from dagmpi.kernels.gpu import fused, tiles

# --- numba.cuda stencils and Gray-Scott, under the simulator -----------------------------

SIMULATED = r'''
import numpy as np
from dagmpi.kernels.cpu import grayscott as cg, stencil as cs
from dagmpi.kernels.gpu import grayscott as gg, stencil as gs

rng = np.random.default_rng(7)


def report(name, got, want):
    assert got.shape == want.shape and got.dtype == want.dtype, (name, got.shape, got.dtype)
    print("ERR", name, float(np.max(np.abs(got - want))) if want.size else 0.0)


def both(name, cpu, gpu, *args):
    report(name, gpu(*args), cpu(*args))


for n, m in [(20, 24), (37, 53), (1, 1)]:
    u = rng.standard_normal((n + 2, m + 2))
    for f in ("laplace5", "laplace9"):
        report(f"{f}-{n}x{m}", getattr(gs, f)(u, np.empty((n, m))), getattr(cs, f)(u, np.empty((n, m))))
    both(f"heat5_step-{n}x{m}", cs.heat5_step, gs.heat5_step, u, 0.2)
    both(f"laplacian-{n}x{m}", cs.laplacian, gs.laplacian, u)
    w = rng.standard_normal((3, 5))
    uw = rng.standard_normal((n + 2, m + 4))
    report(f"weighted2d-{n}x{m}", gs.weighted2d(uw, w, np.empty((n, m))), cs.weighted2d(uw, w, np.empty((n, m))))
for shape in [(11, 13, 7), (4, 5, 3)]:
    u = rng.standard_normal(tuple(s + 2 for s in shape))
    tag = "x".join(map(str, shape))
    report(f"laplace7-{tag}", gs.laplace7(u, np.empty(shape)), cs.laplace7(u, np.empty(shape)))
    both(f"laplacian-{tag}", cs.laplacian, gs.laplacian, u)
u32 = rng.standard_normal((22, 26)).astype(np.float32)
both("heat5_step-float32", cs.heat5_step, gs.heat5_step, u32, 0.2)
report("laplace5-empty", gs.laplace5(np.ones((2, 7)), np.empty((0, 5))), np.empty((0, 5)))
try:
    gs.laplacian(np.ones(5))
except ValueError:
    print("ERR laplacian-1d-raises 0.0")
print("ERR empty_like-numpy", 0.0 if type(gs._empty_like(u, (2, 3), np.float32)) is np.ndarray else 1.0)

params = (0.16, 0.08, 0.035, 0.065, 1.0)
for grid in [(20, 24), (37, 53), (11, 13, 7)]:
    state = np.stack([1.0 - 0.5 * rng.random(grid), 0.25 * rng.random(grid)])
    cpu, gpu, ref = state, state, state
    depth = ((0, 0),) + ((1, 1),) * len(grid)
    for _ in range(3):
        cpu = cg.step(np.pad(cpu, depth, mode="wrap"), *params)
        gpu = gg.step(np.pad(gpu, depth, mode="wrap"), *params)
        ref = cg.step_numpy(ref, *params)
    tag = "x".join(map(str, grid))
    report(f"grayscott-{tag}", gpu, cpu)
    report(f"grayscott-numpy-{tag}", gpu, ref)
try:
    gg.step(np.ones((2, 5)), *params)
except ValueError:
    print("ERR grayscott-2d-field-raises 0.0")
print("DONE")
'''

SIM_CASES = (
    [f"{f}-{s}" for f in ("laplace5", "laplace9", "heat5_step", "laplacian", "weighted2d")
     for s in ("20x24", "37x53", "1x1")]
    + [f"{f}-{s}" for f in ("laplace7", "laplacian") for s in ("11x13x7", "4x5x3")]
    + [f"grayscott{k}-{s}" for k in ("", "-numpy") for s in ("20x24", "37x53", "11x13x7")]
    + ["heat5_step-float32", "laplace5-empty", "laplacian-1d-raises", "empty_like-numpy",
       "grayscott-2d-field-raises"]
)


@pytest.fixture(scope="module")
def simulated() -> dict:
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-"], input=SIMULATED, env=env, capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0 and "DONE" in proc.stdout, proc.stdout + proc.stderr
    return {m[1]: float(m[2]) for m in re.finditer(r"^ERR (\S+) (\S+)$", proc.stdout, re.M)}


@pytest.mark.parametrize("case", SIM_CASES)
def test_cuda_kernel_matches_cpu_kernel(simulated, case):
    tol = 1e-5 if "float32" in case else 1e-12
    assert case in simulated, sorted(simulated)
    assert simulated[case] < tol


# --- CuPy tile kernels, run on numpy/scipy ------------------------------------------------

rng = np.random.default_rng(3)


def spd(n: int) -> np.ndarray:
    m = rng.standard_normal((n, n))
    return m @ m.T + n * np.eye(n)


@pytest.fixture
def gt(monkeypatch):
    monkeypatch.setattr(tiles, "_xp", lambda: np)
    monkeypatch.setattr(tiles, "_solve_triangular", lambda: scipy.linalg.solve_triangular)
    return tiles


def close(got, want, rtol=1e-12):
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("n", [6, 5])  # a full and a ragged edge tile
def test_cholesky_tiles_match_cpu(gt, n):
    a = spd(n)
    junk = a + np.triu(rng.standard_normal((n, n)), 1)  # only the lower triangle is read
    l = gt.potrf(junk, 1, 6, fresh=True)
    close(l, cpu_tiles.potrf(a, 1, 6, fresh=True))
    assert np.all(np.triu(l, 1) == 0)
    b = rng.standard_normal((4, n))
    b0 = b.copy()
    close(gt.trsm(l, b, fresh=True), cpu_tiles.trsm(l, b, fresh=True))
    np.testing.assert_array_equal(b, b0)  # fresh: the caller's tile is kept
    x = gt.trsm(l, b)
    close(x @ l.T, b0)
    c = spd(4)
    close(np.tril(gt.syrk(b0, c, fresh=True)), np.tril(cpu_tiles.syrk(b0, c, fresh=True)))
    a2, c2 = rng.standard_normal((3, n)), rng.standard_normal((4, 3))
    close(gt.gemm_nt(b0, a2, c2, fresh=True), cpu_tiles.gemm_nt(b0, a2, c2, fresh=True))
    c3 = c2.copy()
    assert gt.gemm_nt(b0, a2, c3) is c3  # in place in an owned tile
    close(c3, c2 - b0 @ a2.T)


@pytest.mark.parametrize("f, args", [("potrf", (0, 0)), ("trsm", ()), ("syrk", ())])
def test_tiles_refuse_integer_tiles_like_cpu(gt, f, args):
    t = np.eye(3, dtype=np.int64)
    lead = (t,) if f == "potrf" else (np.eye(3), t)
    for mod in (gt, cpu_tiles):
        with pytest.raises(TypeError, match="float32 or float64"):
            getattr(mod, f)(*lead, *args)


class CuSolverLike:
    """numpy, except that ``linalg.cholesky`` does not raise: like cuSOLVER's potrf it
    stops at the failing pivot and leaves it on the diagonal (LAPACK's, info ignored)."""

    class linalg:
        @staticmethod
        def cholesky(a):
            return scipy.linalg.lapack.dpotrf(a, lower=1, clean=1)[0]

    def __getattr__(self, name):
        return getattr(np, name)


@pytest.mark.parametrize("bad", [3, 0])
def test_potrf_not_spd_raises_like_cpu(gt, monkeypatch, bad):
    a = spd(6)
    a[bad, bad] = -50.0
    with pytest.raises(np.linalg.LinAlgError) as want:
        cpu_tiles.potrf(a, 2, 12, fresh=True)
    assert f"order {13 + bad}" in str(want.value)
    with pytest.raises(np.linalg.LinAlgError, match=r"diagonal tile \(2, 2\), at step 2"):
        gt.potrf(a, 2, 12)  # numpy raises itself: the tile is named, the order unknown
    monkeypatch.setattr(tiles, "_xp", CuSolverLike)
    with pytest.raises(np.linalg.LinAlgError) as got:
        tiles.potrf(a, 2, 12)
    assert str(got.value) == str(want.value)


def test_matmul_and_substitution_tiles_match_cpu(gt):
    a, b = rng.standard_normal((4, 6)), rng.standard_normal((6, 5))
    c = rng.standard_normal((4, 5))
    close(gt.gemm_acc(a, b), cpu_tiles.gemm_acc(a, b))
    close(gt.gemm_acc(a, b, c.copy()), cpu_tiles.gemm_acc(a, b, c.copy()))
    ci = np.arange(20).reshape(4, 5)
    close(gt.gemm_acc(a, b, ci), cpu_tiles.gemm_acc(a, b, ci))
    from dagmpi.array import tiles as dispatch

    a2, b2 = rng.standard_normal((4, 3)), rng.standard_normal((3, 5))
    close(dispatch.gemm_sum(2, a, a2, b, b2, c.copy()), c + a @ b + a2 @ b2)
    close(dispatch.gemm_sum(2, a, a2, b, b2), a @ b + a2 @ b2)
    with pytest.raises(ValueError, match="2 tile pairs need 4 or 5 tiles, got 3"):
        dispatch.gemm_sum(2, a, a2, b)
    t = np.tril(spd(6))
    rhs = rng.standard_normal((6, 3))
    for lower in (True, False):
        tt = t if lower else t.T.copy()
        for trans in (False, True):
            for unit in (False, True):
                close(gt.trsm_left(tt, rhs, lower, trans, unit), cpu_tiles.trsm_left(tt, rhs, lower, trans, unit))
    x = rng.standard_normal((6, 3))
    for trans, m in ((False, rng.standard_normal((4, 6))), (True, rng.standard_normal((6, 4)))):
        bb = rng.standard_normal((4, 3))
        close(gt.sub_matmul(bb, m, x, trans, fresh=True), cpu_tiles.sub_matmul(bb, m, x, trans, fresh=True))


def test_qr_and_helper_tiles_match_cpu(gt):
    blocks = [rng.standard_normal((7, 4)), rng.standard_normal((5, 4))]
    q1 = [gt.qr_block(x) for x in blocks]
    for got, want in zip(q1, [cpu_tiles.qr_block(x) for x in blocks]):
        close(got[0], want[0]), close(got[1], want[1])
    q2 = gt.qr_stack(*map(gt.second, q1))
    close(q2[1], cpu_tiles.qr_stack(*map(cpu_tiles.second, q1))[1])
    q = np.concatenate([gt.qr_apply(q1[0], q2, 0, 4), gt.qr_apply(q1[1], q2, 4, 8)])
    close(q @ q2[1], np.concatenate(blocks))
    assert gt.first(q2) is q2[0]
    close(gt.tril(blocks[0]), cpu_tiles.tril(blocks[0]))
    close(gt.zeros((3, 2), "float32"), cpu_tiles.zeros((3, 2), "float32"))


# --- CuPy fused kernels: the generated source -----------------------------------------------

def u(f, *children):
    return ("ufunc", f, (), *children)


L0, L1 = ("leaf", 0), ("leaf", 1)
X = rng.standard_normal((9, 7))
I = rng.integers(-100, 100, size=(9, 7))


def test_map_source():
    prog = u(np.power, u(np.add, u(np.multiply, L0, ("const", 2)), ("const", 1)), ("const", 2))
    src = fused.source(prog, "map", np.float64, [np.float64, np.int64])
    assert src.in_params == "float64 x0, int64 x1, int64 c0, int64 c1"
    assert src.out_params == "float64 out"
    assert src.expr == "out = dm_sq(((x0 * c0) + c1))"
    assert src.consts == [2, 1] and src.reduce_expr == ""
    assert re.fullmatch(r"dagmpi_fused_map_[0-9a-f]+", src.name)
    other = fused.source(u(np.power, u(np.add, u(np.multiply, L0, ("const", 5)), ("const", 4)), ("const", 2)),
                         "map", np.float64, [np.float64, np.int64])
    assert other.key == src.key and other.consts == [5, 4]  # constants are arguments: one kernel


def test_reduction_source():
    prog = u(np.subtract, u(np.sqrt, u(np.absolute, L0)), u(np.true_divide, L1, ("const", 3.0)))
    s = fused.source(prog, "sum", np.float64, [np.float64, np.int64])
    assert s.in_params == "float64 x0, int64 x1, float64 c0"
    assert (s.expr, s.reduce_expr, s.identity, s.reduce_type) == (
        "(sqrt(dm_abs(x0)) - (x1 / c0))", "a + b", "0", "double")
    m = fused.source(prog, "max", np.float64, [np.float64, np.int64])
    assert m.reduce_expr == "(a > b || a != a) ? a : b"  # NaN wins, as in numpy
    assert m.identity == "__longlong_as_double(0xfff0000000000000LL)"
    n = fused.source(u(np.add, L0, ("const", 1)), "min", np.int64, [np.int64])
    assert (n.reduce_expr, n.identity, n.reduce_type) == ("(a < b || a != a) ? a : b", "9223372036854775807LL",
                                                          "long long")
    assert m.key != s.key and m.name != s.name


@pytest.mark.parametrize("prog", [
    u(np.power, u(np.add, u(np.multiply, L0, ("const", 2)), ("const", 1)), ("const", 2)),
    u(np.subtract, u(np.sqrt, u(np.absolute, L0)), u(np.true_divide, L1, ("const", 3.0))),
    u(np.add, u(np.greater, L0, L1), ("const", 1)),
    u(np.multiply, u(np.exp, u(np.negative, L0)), u(np.cos, u(np.square, L0))),
], ids=range(4))
def test_generated_expression_computes_the_program(prog):
    """The CUDA expression is also Python: evaluated on numpy it is what numpy computes."""
    src = fused.source(prog, "map", np.float64, [X.dtype, I.dtype])
    scope = {"dm_abs": np.abs, "dm_sq": np.square, "sqrt": np.sqrt, "exp": np.exp, "cos": np.cos,
             "x0": X, "x1": I, **{f"c{i}": c for i, c in enumerate(src.consts)}}
    got = eval(src.expr.removeprefix("out = "), scope)
    np.testing.assert_allclose(got, np.asarray(ops.evaluate(prog, [X, I])), rtol=1e-15)


@pytest.mark.parametrize("prog, mode, dtype, leaves", [
    (u(np.floor_divide, L0, ("const", 0)), "map", np.int64, [np.int64]),   # corner cases differ
    (u(np.add, L0, ("const", 1)), "map", np.float64, [np.float32]),        # float32 leaves
    (u(np.sqrt, L0), "map", np.float64, [np.int64]),                      # float op on integers
    (u(np.add, L0, ("const", True)), "map", np.int64, [np.int64]),        # bool constant
    (u(np.add, L0, ("const", 2 ** 70)), "map", np.int64, [np.int64]),     # not an int64
    (("call", np.sort, (), L0), "map", np.float64, [np.float64]),         # map_blocks
    (u(np.add, L0, ("const", 1)), "map", np.float32, [np.float64]),       # output dtype
    (u(np.add, L0, ("const", 1)), "prod", np.float64, [np.float64]),      # unknown reduction
    (u(np.add, ("const", 1.0), ("const", 2.0)), "sum", np.float64, []),   # a reduction over no array
])
def test_unsafe_programs_get_no_kernel(prog, mode, dtype, leaves):
    assert fused.source(prog, mode, dtype, leaves) is None
