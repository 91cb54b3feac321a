"""A rank's side of a loop of launches (``dagmpi.spawn_loop``): pure bookkeeping, no I/O.

A loop is one launch on rank 0 (its points are those of the last step), sent to
its ranks once.  Each rank runs its points step after step: point ``j`` of step
``t >= 1`` reads the points of step ``t - 1`` that the step's projection gives it;
when point ``i`` of step ``t`` ends, its rank hands the value to its own points of
step ``t + 1`` that read it and pushes it to the other ranks that have such points
(:meth:`LoopState.readers`, worked out once per projection from the layout).  A
point of step ``t + 1`` starts when the last of its inputs is in
(:meth:`LoopState.arrive`).  The worker (:mod:`dagmpi.runtime.worker`) does the
running and the sending; this module says who reads what and when a point is ready.

A loop with a ``share`` function (the *carry* form, e.g. a stencil's time loop: a
point keeps its block and sends only its halos) passes point ``j`` of step ``t >= 1``
its own value of step ``t - 1`` first (:data:`OWN`: kept on its rank, never sent),
then ``share(i, value)`` of each point ``i`` the projection gives it; the share is
what the readers get and what travels.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .launches import Layout, Projection

#: The input key of a point's own value of the step before (the carry form).
OWN = -1


def loop_links(layout: Layout, projection: Projection, rank: int) -> tuple[dict, dict, dict]:
    """For one step of a loop on ``layout`` whose points read the step before through
    ``projection``, seen from ``rank``: ``(local, remote, calls)`` where ``local[i]``
    lists the points of ``rank`` that read point ``i`` (wherever ``i`` is), ``remote[i]``,
    for a point ``i`` of ``rank``, the other ranks with points that read it (each
    once), and ``calls[j]``, for each point ``j``
    of ``rank``, the points it reads in the projection's order (an input named twice
    is passed twice).  O(points x inputs per point), once per projection and loop."""
    n = layout.n
    rank_of = layout.rank_of
    local: dict[int, list] = {}
    remote: dict[int, list] = {}
    calls: dict[int, tuple] = {}
    mine = set(layout.points_of(rank))
    for j in range(n):
        srcs = projection.points(j, n)
        rj = rank_of(j)
        if rj == rank:
            calls[j] = tuple(srcs)
        for i in dict.fromkeys(srcs):
            if rj == rank:
                local.setdefault(i, []).append(j)
            elif i in mine:
                ranks = remote.setdefault(i, [])
                if rj not in ranks:
                    ranks.append(rj)
    return local, remote, calls


class LoopState:
    """What a rank keeps of a loop while it runs there (see the module docstring)."""

    __slots__ = ("id", "base", "n", "steps", "layout", "rank", "projections", "mine", "spec", "epoch", "pending",
                 "left", "ended0", "share", "pushed", "_links")

    def __init__(self, launch_id: int, base: int, layout: Layout, rank: int, steps: int,
                 projections: Sequence[Projection], spec: Any = None, epoch: int = 0,
                 share: Any = None) -> None:
        if steps < 2 or not projections:
            raise ValueError(f"a loop has >= 2 steps and at least one projection, got {steps} and {projections!r}")
        self.id, self.base, self.n, self.steps = launch_id, base, layout.n, steps
        self.layout, self.rank, self.projections = layout, rank, tuple(projections)
        self.mine = tuple(layout.points_of(rank))
        #: what the worker needs to make a point's job (its launch's function, arguments, policy...)
        self.spec = spec
        #: which run of the loop (one more each time a death made it start again)
        self.epoch = epoch
        #: ``(step, point) -> [inputs still missing, {input id: value}, first error]``
        self.pending: dict[tuple[int, int], list] = {}
        #: what is left to happen here: each point's steps before the last to end, and
        #: its last step to start (or fail before)
        self.left = len(self.mine) * steps
        #: this rank's points whose step 0 ended (ran, or failed before): once each
        self.ended0: set[int] = set()
        #: the carry form's ``share(i, value)``, or its pickle until a point first calls it
        #: (None: readers get the whole value)
        self.share = share
        #: tracing: ``(step, point) -> (bytes, arrival time)`` of values pushed here, until
        #: a point reading it starts (its trace record counts the bytes that moved, once)
        self.pushed: Optional[dict] = None
        self._links: dict[int, tuple[dict, dict, dict, dict, dict]] = {}

    def links(self, t: int) -> tuple[dict, dict, dict, dict, dict]:
        """:func:`loop_links` of step ``t >= 1`` (cached per projection), then, for each
        point of this rank, its input ids in order and how many distinct inputs it waits for
        (the carry form: its own value, :data:`OWN`, first)."""
        k = (t - 1) % len(self.projections)
        got = self._links.get(k)
        if got is None:
            local, remote, calls = loop_links(self.layout, self.projections[k], self.rank)
            base = self.base
            own = (OWN,) if self.share is not None else ()
            got = self._links[k] = (local, remote, calls,
                                    {j: own + tuple(base + i for i in c) for j, c in calls.items()},
                                    {j: len(own) + len(dict.fromkeys(c)) for j, c in calls.items()})
        return got

    def readers(self, t: int, i: int) -> tuple[Sequence[int], Sequence[int]]:
        """Who reads point ``i`` of step ``t`` (one of this rank's) at step ``t + 1``:
        this rank's points, and the other ranks (nothing after the last step)."""
        if t + 1 >= self.steps:
            return (), ()
        got = self.links(t + 1)
        return got[0].get(i, ()), got[1].get(i, ())

    def call(self, t: int, j: int) -> tuple:
        """The input ids of point ``j`` (this rank's) at step ``t >= 1``, in its arguments' order."""
        return self.links(t)[3][j]

    def arrive(self, t: int, j: int, i: int, value: Any, error: Any = None) -> Optional[list]:
        """Input ``i`` (of step ``t - 1``; :data:`OWN`: point ``j``'s own value, the carry
        form) of this rank's point ``j`` of step ``t`` is here (``error``: it failed).
        Returns ``[0, inputs by id, first error]`` once the last input is in (the point
        may start, or fails), else None."""
        key = (t, j)
        got = self.pending.get(key)
        if got is None:
            got = self.pending[key] = [self.links(t)[4][j], {}, None]
        if error is not None:
            if got[2] is None:
                got[2] = error
        else:
            got[1][OWN if i == OWN else self.base + i] = value
        got[0] -= 1
        if got[0] > 0:
            return None
        del self.pending[key]
        return got

    def trace_id(self, t: int, j: int) -> int:
        """The id under which point ``j``'s run of step ``t`` is traced: the last step's
        are the launch's point ids, the earlier steps' follow them (a loop reserves
        ``n * steps`` ids), so every run of a loop has its own."""
        return self.base + (self.steps - 1 - t) * self.n + j

    def trace_inputs(self, t: int, j: int) -> list[tuple[int, int, int]]:
        """``(producer's trace id, its rank, its point)`` of each distinct input of point
        ``j`` (this rank's) at step ``t >= 1`` (its own value and its own share: one input)."""
        rank_of, base = self.layout.rank_of, self.base
        out: dict[int, tuple] = {}
        for d in self.call(t, j):
            i = j if d == OWN else d - base
            tid = self.trace_id(t - 1, i)
            if tid not in out:
                out[tid] = (tid, self.rank if d == OWN else rank_of(i), i)
        return list(out.values())

    def empty(self, t: int) -> Sequence[int]:
        """This rank's points that read nothing at step ``t >= 1`` (e.g. a grid's edge
        under offsets that fall outside it): they wait for no one (none in the carry form:
        each waits for its own value)."""
        if self.share is not None:
            return ()
        calls = self.links(t)[2]
        return [j for j in self.mine if not calls[j]]

    def one_done(self) -> bool:
        """A point of this rank ended a step before the last, or started the last; True
        when that was all (the rank drops the loop's state: nothing more comes for it)."""
        self.left -= 1
        return self.left <= 0
