"""dagmpi.spawn_loop (many steps of a launch, run on the workers) against plain Python
and against the same steps as a chain of spawn_many: projections (cycled ones too),
layouts, points that read nothing, errors, retries, checkpoints and bad input.

    python -m dagmpi tests/scripts/loops.py [CKPT_DIR LOG_FILE]

With a checkpoint folder, it runs only the checkpoint part (twice in a row from the
test: the second run reads the loop back) and prints ``RESULT`` and ``RUNS``.
"""

import functools
import os
import sys
import tempfile

import numpy as np

import dagmpi
from dagmpi import Layout, Projection
from dagmpi.runtime import context


def init(i, scale):
    return np.array([float(i) * scale])


def step(i, scale, *ins):
    """A value that depends on every input, their order and the point."""
    return np.array([sum((k + 1) * x[0] for k, x in enumerate(ins)) * scale + i])


def boom_first(i):
    if i == 0:
        raise ZeroDivisionError("point 0 of the start")
    return np.array([1.0])


def boom_at(i, where, *ins):
    """Raises at point 2 once ``where`` holds a marker for its step count."""
    count = os.path.join(where, f"count{i}")
    with open(count, "a") as fh:
        fh.write("x")
    if i == 2 and os.path.getsize(count) == 3:  # (its third step)
        raise ZeroDivisionError("point 2 divides by zero at its third step")
    return np.array([1.0 + sum(x[0] for x in ins)])


def flaky(i, where, *ins):
    """Raises OSError the first time each point runs at each step (a marker file)."""
    k = 0
    while os.path.exists(os.path.join(where, f"{i}-{k}-ok")):
        k += 1
    mark = os.path.join(where, f"{i}-{k}")
    if not os.path.exists(mark):
        open(mark, "w").close()
        raise OSError(f"point {i}: a transient failure")
    open(mark + "-ok", "w").close()
    return np.array([float(i) + sum(x[0] for x in ins)])


def broken(i):
    import time

    time.sleep(0.1)  # (the loop's points wait for it meanwhile)
    raise ValueError("broken start")


class Unloadable:
    """A value that pickles but cannot be rebuilt on another rank."""

    def __reduce__(self):
        return _explode, ()


def _explode():
    raise RuntimeError("cannot be rebuilt here")


def unloadable(i, *ins):
    return Unloadable() if i == 1 else np.array([1.0])  # (point 2, on another rank, reads it)


def logged(i, log, *ins):
    with open(log, "a") as fh:
        fh.write("point\n")
    return np.array([float(i) + sum(x[0] for x in ins)])


def cinit(i):
    return np.array([float(i), 0.0])


def cstep(i, scale, own, *shares):
    """The carry form: its own value whole (its second entry counts its steps), the
    others' shares (floats: only what ``cshare`` gives travels)."""
    assert all(type(x) is float for x in shares), shares
    return np.array([0.5 * own[0] + scale * sum((k + 1) * x for k, x in enumerate(shares)) + i, own[1] + 1.0])


def cshare(i, value):
    return float(value[0]) + i


def cscaled(k, i, value):
    return k * float(value[0]) + i


def cshare_boom(i, value):
    if i == 2 and value[1] == 3:
        raise ZeroDivisionError("the share of point 2 after its third step")
    return float(value[0])


def cflaky(i, where, own, *shares):
    """The carry form, raising OSError the first time each point runs at each step."""
    flaky(i, where)
    return np.array([own[0] + sum(shares), own[1] + 1.0])


def clogged(i, log, own, *shares):
    with open(log, "a") as fh:
        fh.write("point\n")
    return np.array([own[0] + sum(shares) + i, own[1] + 1.0])


def carried(n, steps, scale, projs):
    """The carry loop in plain Python (step 0 reads its start value only)."""
    u = [(0.5 * i + i, 1.0) for i in range(n)]
    for t in range(1, steps):
        p = projs[(t - 1) % len(projs)]
        sh = [x + j for j, (x, _) in enumerate(u)]
        u = [(0.5 * u[i][0] + scale * sum((k + 1) * sh[j] for k, j in enumerate(p.points(i, n))) + i, u[i][1] + 1.0)
             for i in range(n)]
    return u


def reference(n, steps, scale, init_proj, projs, init_scale=1.0):
    """The loop in plain Python: step 0 reads init through ``init_proj`` (None: nothing)."""
    u0 = [float(i) * init_scale for i in range(n)]
    u = [sum((k + 1) * u0[j] for k, j in enumerate(init_proj.points(i, n))) * scale + i if init_proj else float(i)
         for i in range(n)]
    for t in range(1, steps):
        p = projs[(t - 1) % len(projs)]
        u = [sum((k + 1) * u[j] for k, j in enumerate(p.points(i, n))) * scale + i for i in range(n)]
    return u


def expect(call, kind, *words):
    """``call()`` raises ``kind`` with each of ``words`` in its message."""
    try:
        call()
    except kind as exc:
        assert all(x in str(exc) for x in words), (words, exc)
    else:
        raise AssertionError(f"no {kind.__name__}: {words}")


def check(name, got, want):
    got = [float(x[0]) for x in got]
    assert np.allclose(got, want, rtol=1e-12), (name, got, want)
    print("ok", name, flush=True)


def checkpointed(ckpt, log):
    dagmpi.init(checkpoint=ckpt)
    p = Projection("offsets", (-1, 0, 1))
    u = dagmpi.spawn_loop(logged, 5, 4, log, step_reads=p, checkpoint=True)
    c0 = dagmpi.spawn_many(cinit, 5, checkpoint=True)
    # (two carry loops that differ only in their share's bound argument: two checkpoint keys)
    c1, c2 = [dagmpi.spawn_loop(clogged, 5, 4, log, reads=[(c0, Projection("same"))], step_reads=p,
                                share=functools.partial(cscaled, k), checkpoint=True) for k in (1.0, 2.0)]
    got = [sum(float(x[0]) for x in v.fetch(timeout=60)) for v in (u, c1, c2)]
    assert got[1] != got[2], got
    print("RESULT", *got, flush=True)
    dagmpi.shutdown()
    with open(log) as fh:
        print("RUNS", fh.read().count("point"), flush=True)


def main():
    workers = sorted(dagmpi.workers())
    w = len(workers)
    stencil = Projection("offsets", (-1, 0, 1))
    wrap = Projection("offsets", (-1, 1, 0), wrap=True)
    for n in (1, w, 3 * w + 1):
        for steps in (1, 2, 7):
            for layout in ("blocks", "cyclic"):
                u0 = dagmpi.spawn_many(init, n, 1.0)
                u = dagmpi.spawn_loop(step, n, steps, 0.5, reads=[(u0, stencil)], step_reads=wrap, layout=layout)
                check(f"n={n} steps={steps} {layout}", u.fetch(), reference(n, steps, 0.5, stencil, [wrap]))
    # cycled projections (an FFT's butterflies), no init reads, a table layout
    n = 8
    table = Layout.of_table([workers[(3 * i) % w] for i in range(n)])
    fft = [Projection("xor", (1 << k,)) for k in range(3)]
    u = dagmpi.spawn_loop(step, n, 9, 0.25, step_reads=fft, layout=table)
    check("xor cycled table", u.fetch(), reference(n, 9, 0.25, None, fft))
    # a tree (parent): a point's own value is not among its inputs
    u = dagmpi.spawn_loop(step, 13, 6, 1.5, step_reads=Projection("parent", (2,)), layout="cyclic")
    check("parent cyclic", u.fetch(), reference(13, 6, 1.5, None, [Projection("parent", (2,))]))
    # a grid whose edge points read nothing (offsets that fall outside, not wrapped)
    shape = (3, 4)
    up = Projection("grid", (shape, ((-1, 0), (0, -1)), (False, False)))
    u = dagmpi.spawn_loop(step, 12, 5, 1.0, step_reads=up)
    check("grid with empty inputs", u.fetch(), reference(12, 5, 1.0, None, [up]))
    # the same as a chain of spawn_many, and readable by later launches and tasks
    n = 2 * w + 1
    v = dagmpi.spawn_many(init, n, 2.0)
    chain = dagmpi.spawn_many(step, n, 0.5, reads=[(v, stencil)])
    for _ in range(1, 6):
        chain = dagmpi.spawn_many(step, n, 0.5, reads=[(chain, wrap)])
    want = [float(x[0]) for x in chain.fetch()]
    sched = context._runtime.driver.scheduler
    before = sched.n_launches  # (every launch before is handled: the chain's last one ended)
    u = dagmpi.spawn_loop(step, n, 6, 0.5, reads=[(v, stencil)], step_reads=wrap)
    after = dagmpi.spawn_many(step, n, 1.0, reads=[(u, Projection("same"))])
    got = u.fetch()
    check("as a chain of launches", got, want)
    check("read by a later launch", after.fetch(), [1.0 * x[0] + i for i, x in enumerate(got)])
    assert dagmpi.fetch(dagmpi.spawn(lambda x: float(x[0]), u[n - 1])) == float(got[-1][0])
    assert sched.n_launches - before == 2, (sched.n_launches, before)
    print("ok one launch on rank 0", flush=True)
    # the carry form: a point keeps its value, its readers get (and the ranks send) its share
    for n in (w, 3 * w + 1):
        for projs in ([wrap], [stencil, wrap]):
            for layout in ("blocks", "cyclic"):
                c0 = dagmpi.spawn_many(cinit, n)
                got = dagmpi.spawn_loop(cstep, n, 6, 0.25, reads=[(c0, Projection("same"))], step_reads=projs,
                                        layout=layout, share=cshare).fetch()
                want = carried(n, 6, 0.25, projs)
                assert np.allclose([x[0] for x in got], [x for x, _ in want], rtol=1e-12), (got, want)
                assert [x[1] for x in got] == [6.0] * n, got  # (each point's own value came through every step)
    c0 = dagmpi.spawn_many(cinit, 5)
    expect(lambda: dagmpi.spawn_loop(cstep, 5, 6, 1.0, reads=[(c0, Projection("same"))], step_reads=stencil,
                                     share=cshare_boom).fetch(timeout=60),
           ZeroDivisionError, "share of point 2")
    with tempfile.TemporaryDirectory() as d:  # (a point retried in place keeps its own value)
        c0 = dagmpi.spawn_many(cinit, 4)
        got = dagmpi.spawn_loop(cflaky, 4, 3, d, reads=[(c0, Projection("same"))], step_reads=Projection("same"),
                                share=cshare, retries=1).fetch()
        want = [(float(i), 0.0) for i in range(4)]
        for _ in range(3):
            want = [(x + (x + i if _ else 0.0), c + 1.0) for i, (x, c) in enumerate(want)]
        assert [tuple(x) for x in got] == want, (got, want)
    print("ok carry form", flush=True)
    # a point that fails at its third step fails the loop with its error, and what reads it
    with tempfile.TemporaryDirectory() as d:
        bad = dagmpi.spawn_loop(boom_at, 5, 6, d, step_reads=stencil)
        later = dagmpi.spawn_many(step, 5, 1.0, reads=[(bad, Projection("same"))])
        expect(bad.fetch, ZeroDivisionError, "third step")
        expect(later.fetch, dagmpi.TaskError, "failed")
    # a start whose every point fails: every point of step 0 fails (each once, however
    # many of its inputs failed), the loop fails, nothing hangs
    u0 = dagmpi.spawn_many(broken, 8)
    expect(lambda: dagmpi.spawn_loop(step, 8, 10, 1.0, reads=[(u0, stencil)], step_reads=stencil).fetch(timeout=60),
           dagmpi.TaskError, "inputs failed")
    # a failure whose cone ends before the last step still fails the loop (else no one would know)
    a = dagmpi.spawn_many(boom_first, 2, layout=Layout.of_table([workers[0]] * 2))
    expect(lambda: dagmpi.spawn_loop(step, 2, 4, 1.0, reads=[(a, Projection("same"))],
                                     step_reads=Projection("offsets", (-1,)),
                                     layout=Layout.of_table([workers[0]] * 2)).fetch(timeout=60),
           dagmpi.TaskError, "inputs failed")
    if context.current_client().serializes and w > 1:  # (a value pushed to another rank that cannot be rebuilt)
        expect(lambda: dagmpi.spawn_loop(unloadable, 2 * w, 3, step_reads=stencil).fetch(timeout=60),
               dagmpi.TaskError, "could not unpickle", "cannot be rebuilt")
    print("ok errors", flush=True)
    check("the job goes on", dagmpi.spawn_loop(step, 3, 3, 1.0, step_reads=stencil).fetch(),
          reference(3, 3, 1.0, None, [stencil]))
    with tempfile.TemporaryDirectory() as d:
        got = dagmpi.spawn_loop(flaky, 4, 3, d, step_reads=Projection("same"), retries=1).fetch()
        check("retried points", got, [3.0 * i for i in range(4)])
    # bad input: said at once, nothing spawned
    for call, kind, words in [
            (lambda: dagmpi.spawn_loop(step, 3, 0, step_reads=stencil), ValueError, "steps >= 1"),
            (lambda: dagmpi.spawn_loop(step, 3, 2, step_reads="offsets"), TypeError, "Projection"),
            (lambda: dagmpi.spawn_loop(step, 3, 2, step_reads=[]), TypeError, "Projection"),
            (lambda: dagmpi.spawn_loop(step, 3, 2, step_reads=Projection("grid", ((2, 2), ((0, 1),), (True, True)))),
             ValueError, "grid of 4 points"),
            (lambda: dagmpi.spawn_loop(step, -1, 2, step_reads=stencil), ValueError, "n >= 0"),
            (lambda: dagmpi.spawn_loop(42, 3, 2, step_reads=stencil), TypeError, "spawn_loop() needs a callable"),
            (lambda: dagmpi.spawn_loop(step, 3, 2, step_reads=stencil, share=3), TypeError, "share(i, value)")]:
        expect(call, kind, words)
    print("ok bad input", flush=True)
    print("ALL OK", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 2:
        checkpointed(sys.argv[1], sys.argv[2])
    else:
        main()
