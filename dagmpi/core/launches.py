"""Launches of many point tasks (#17 part 2): one record on rank 0 per launch, not
one per point.  Pure: no I/O, no threads; rank 0's scheduler and the workers'
expansion share this module (see ``docs/design.md``, "Launches of many point tasks").

A launch runs ``fn`` on the points ``0 .. n-1``; point ``i`` is the task
``base + i``.  Where each point runs is its :class:`Layout` (owner computes: no
placement decision per point); what it reads is, per earlier launch it reads, a
:class:`Projection` from the point to the points of that launch whose values it
takes as inputs.  Rank 0 keeps, per launch, the count of points not finished per
rank, and sends each rank it touches one :class:`~dagmpi.core.events.ExecuteLaunch`;
the worker turns it into its points' jobs with :func:`expand`: the inputs of each
point and the rank that computes each one, from the layouts (a local input is
handed over in memory, a remote one asked of its owner, who sends it when it
exists).  The worker reports :class:`~dagmpi.core.events.LaunchDone` once per launch
(its count of points), so rank 0's cost per launch grows with the ranks it touches,
not with ``n``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .events import Deliver, ExecuteLaunch, MoveLaunch, ReleaseLaunch, TaskSubmitted
from .failures import RankLost, UnknownDependency, UpstreamFailure
from .records import TaskRecord
from .states import TaskState

_WAITING, _FINISHED, _ERRORED = TaskState.WAITING, TaskState.FINISHED, TaskState.ERRORED

__all__ = ["Layout", "Projection", "Read", "expand", "LaunchRecord", "ReportTree", "Reports", "Launches"]


@dataclass(frozen=True, slots=True)
class Layout:
    """Which rank runs each of ``n`` points: ``"blocks"`` (contiguous runs of
    ``ceil(n / len(ranks))`` points per rank, in ``ranks`` order), ``"cyclic"`` (point
    ``i`` on ``ranks[i % len(ranks)]``) or ``"table"`` (``table[i]``: an array's owners).
    A formula, evaluated the same way on rank 0 and on the workers; ``ranks`` may be
    a ``range`` (then finding a rank's place costs O(1), not O(ranks))."""

    kind: str
    n: int
    ranks: Sequence[int]
    table: Optional[tuple[int, ...]] = None

    def __reduce__(self) -> tuple:  # (a tuple on the wire: slots dataclasses pickle slowly)
        return Layout, (self.kind, self.n, self.ranks, self.table)

    def __post_init__(self) -> None:
        if self.kind not in ("blocks", "cyclic", "table"):
            raise ValueError(f"a launch layout is 'blocks', 'cyclic' or 'table', not {self.kind!r}")
        if self.n < 0:
            raise ValueError(f"a launch has n >= 0 points, not {self.n}")
        if self.kind == "table":
            if self.table is None or len(self.table) != self.n:
                raise ValueError(f"a 'table' layout needs one rank per point ({self.n}), got "
                                 f"{None if self.table is None else len(self.table)}")
        elif not len(self.ranks):
            raise ValueError("a launch layout needs at least one rank")

    @classmethod
    def blocks(cls, n: int, ranks: Sequence[int]) -> "Layout":
        return cls("blocks", n, ranks if isinstance(ranks, range) else tuple(ranks))

    @classmethod
    def cyclic(cls, n: int, ranks: Sequence[int]) -> "Layout":
        return cls("cyclic", n, ranks if isinstance(ranks, range) else tuple(ranks))

    @classmethod
    def of_table(cls, table: Sequence[int]) -> "Layout":
        t = tuple(int(r) for r in table)
        return cls("table", len(t), tuple(sorted(set(t))), t)

    def _per(self) -> int:
        return -(-self.n // len(self.ranks)) if self.n else 1

    def rank_of(self, i: int) -> int:
        """The rank that runs point ``i``."""
        if self.kind == "cyclic":
            return self.ranks[i % len(self.ranks)]
        if self.kind == "blocks":
            return self.ranks[i // self._per()]
        return self.table[i]  # type: ignore[index]

    def points_of(self, rank: int) -> Sequence[int]:
        """The points ``rank`` runs, in increasing order (a ``range`` for formulas)."""
        if self.kind == "table":
            return [i for i, r in enumerate(self.table) if r == rank]  # type: ignore[arg-type]
        if rank not in self.ranks:
            return range(0)
        k = self.ranks.index(rank)
        if self.kind == "cyclic":
            return range(k, self.n, len(self.ranks))
        per = self._per()
        return range(min(k * per, self.n), min((k + 1) * per, self.n))

    def touched(self) -> Sequence[int]:
        """The ranks with at least one point, in ``ranks`` order (a slice: O(1) on a range)."""
        if self.kind == "table":
            return self.ranks
        used = min(len(self.ranks), self.n) if self.kind == "cyclic" else -(-self.n // self._per())
        return self.ranks[:used]


@dataclass(frozen=True, slots=True)
class Projection:
    """From a point ``i`` of a launch to the points of an earlier launch (of ``n``
    points) it reads, evaluated on the workers:

    * ``"same"``: point ``i``;
    * ``"offsets"``: ``i + o`` for each ``o`` in ``args`` (in order), those outside
      ``0 .. n-1`` dropped (``wrap=False``) or wrapped around (``wrap=True``);
    * ``"xor"``: ``i`` and ``i ^ args[0]`` (a butterfly step, as in an FFT);
    * ``"parent"``: ``i // args[0]`` (a tree), when it exists;
    * ``"all"``: every point (a reduction over the launch);
    * ``"grid"``: the points are the blocks of a grid of shape ``args[0]`` in C order;
      point ``i`` reads the block at each offset of ``args[1]`` (tuples, one entry per
      axis) from its own, in order, wrapped around on the axes where ``args[2][axis]``
      is true and dropped where it falls outside the others (an N-D stencil's
      neighbours, as ``map_overlap`` reads them); ``args[3]``, when given, is the grid
      of the launch read, if it differs (e.g. the blocks along an axis, read by the
      blocks of a reduction over it).
    """

    kind: str
    args: tuple = ()
    wrap: bool = False

    def __reduce__(self) -> tuple:
        return Projection, (self.kind, self.args, self.wrap)

    def __post_init__(self) -> None:
        if self.kind not in ("same", "offsets", "xor", "parent", "all", "grid"):
            raise ValueError(f"a projection is 'same', 'offsets', 'xor', 'parent', 'all' or 'grid', "
                             f"not {self.kind!r}")
        if self.kind == "grid":
            ok = len(self.args) in (3, 4)
            if ok:
                shape, offsets, wrap = self.args[:3]
                ok = len(wrap) == len(shape) and all(len(o) == len(shape) for o in offsets) and \
                    (len(self.args) == 3 or len(self.args[3]) == len(shape))
            if not ok:
                raise ValueError("a 'grid' projection takes (grid shape, offsets, wrap per axis), got "
                                 f"{self.args!r}")
        if self.kind in ("xor", "parent") and (len(self.args) != 1 or int(self.args[0]) < 1):
            raise ValueError(f"a {self.kind!r} projection takes one positive integer, got {self.args!r}")

    def points(self, i: int, n: int) -> list[int]:
        """The points of a launch of ``n`` points that point ``i`` reads."""
        k = self.kind
        if k == "same":
            return [i] if 0 <= i < n else []
        if k == "offsets":
            out = []
            for o in self.args:
                j = i + o
                if self.wrap:
                    out.append(j % n)
                elif 0 <= j < n:
                    out.append(j)
            return out
        if k == "xor":
            return [j for j in sorted({i, i ^ int(self.args[0])}) if j < n]
        if k == "parent":
            j = i // int(self.args[0])
            return [j] if j < n else []
        if k == "grid":
            shape, offsets, wrap = self.args[:3]
            src = self.args[3] if len(self.args) > 3 else shape
            idx, rest = [], i
            for s in reversed(shape):
                rest, r = divmod(rest, s)
                idx.append(r)
            idx.reverse()
            out = []
            for off in offsets:
                j = 0
                for a, (x, o, s) in enumerate(zip(idx, off, src)):
                    y = x + o
                    if not 0 <= y < s:
                        if not wrap[a]:
                            break
                        y %= s
                    j = j * s + y
                else:
                    out.append(j)
            return out
        return list(range(n))


@dataclass(frozen=True, slots=True)
class Read:
    """What a launch reads from an earlier one: its id range and layout, and the projection."""

    launch_id: int
    base: int
    n: int
    layout: Layout
    projection: Projection

    def __reduce__(self) -> tuple:
        return Read, (self.launch_id, self.base, self.n, self.layout, self.projection)


def expand(base: int, layout: Layout, rank: int, reads: Sequence[Read]) -> list[tuple[int, tuple]]:
    """The jobs of ``rank`` in a launch: ``(task_id, ((dep_id, owner_rank), ...))`` per
    point it runs, the inputs in the order of ``reads`` and of each projection."""
    out = []
    for i in layout.points_of(rank):
        inputs = []
        for rd in reads:
            lay, b = rd.layout, rd.base
            for j in rd.projection.points(i, rd.n):
                inputs.append((b + j, lay.rank_of(j)))
        out.append((base + i, tuple(inputs)))
    return out


@dataclass(slots=True)
class LaunchRecord:
    """What rank 0 keeps per launch (see the module docstring)."""

    id: int
    base: int
    n: int
    name: str
    layout: Layout
    reads: tuple[Read, ...]
    #: points not reported done yet
    pending: int
    refs: int = 1
    #: launches not done yet that read this one's values
    readers: set = field(default_factory=set)
    watchers: tuple = ()
    error: Any = None
    nbytes: int = 0
    #: the ranks sent its points (they hold its values until released): a range or a tuple
    ranks: Sequence[int] = ()
    #: its points materialised as task records that wait for it to end (Launches._point)
    points: list = field(default_factory=list)
    #: lineage mode (ULFM): what runs a point again (the launch's spec, kept), the ranks
    #: that reported their points, the records (launches and points) that may need it
    #: computed again, the layout its points were sent with (None: not sent yet), and
    #: the points computed again after their rank died (task id -> counted in ``pending``)
    spec: Any = None
    reported: Optional[set] = None
    heirs: int = 0
    sent: Optional[Layout] = None
    redo: Optional[dict] = None
    relaid: Optional[Layout] = None  # (during a recovery: its layout before)
    #: a loop (``dagmpi.spawn_loop``): its points cannot be computed again one by one;
    #: a death while it runs runs it again from the start (lineage mode), as run ``epoch``
    loop: bool = False
    epoch: int = 0

    @property
    def done(self) -> bool:
        return not self.pending


#: ``Deliver.owner`` of a launch that ended: its values are on the ranks of its layout.
SPREAD = -1

#: Fan-out of the trees that carry a launch to its ranks and their reports back.
TREE_FANOUT = 16


class ReportTree:
    """A ``k``-ary tree over the ranks of a launch (by their place in ``ranks``): the
    launch's :class:`~dagmpi.core.events.ExecuteLaunch` travels down it, and each rank
    reports its points, with those of its subtree, to its parent once they are all
    done; the root reports to rank 0.  Rank 0 then handles one message per launch,
    not one per rank (a reduction, as MPI's collectives and Legion's index launches do)."""

    __slots__ = ("ranks", "k")

    def __init__(self, ranks: Sequence[int], k: int = TREE_FANOUT) -> None:
        self.ranks, self.k = ranks, k

    def parent(self, rank: int) -> Optional[int]:
        """The rank ``rank`` reports to (None: the root, which reports to rank 0)."""
        p = self.ranks.index(rank)
        return None if p == 0 else self.ranks[(p - 1) // self.k]

    def children(self, rank: int) -> Sequence[int]:
        p = self.ranks.index(rank)
        lo = p * self.k + 1
        return self.ranks[lo:lo + self.k]

    def depth(self, rank: int) -> int:
        """Hops from the root (the root: 0)."""
        p, d = self.ranks.index(rank), 0
        while p:
            p, d = (p - 1) // self.k, d + 1
        return d


class Reports:
    """A worker's side of the report trees: per launch, its own points not done and
    the reports of its children not in yet; :meth:`own_done` and :meth:`child` return
    ``(count, errors)`` to send up when the subtree is complete (else None)."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        #: launch id -> [own points left (None: not told yet), children left, count, errors]
        self.state: dict[int, list] = {}

    def expect(self, launch_id: int, own: int, children: int) -> Optional[tuple[int, tuple]]:
        st = self.state.get(launch_id)
        if st is None:
            st = self.state[launch_id] = [own, children, 0, ()]
        else:  # a child reported before this rank heard of the launch
            st[0], st[1] = own, st[1] + children
        return self._ripe(launch_id, st)

    def own_done(self, launch_id: int, errors: tuple = ()) -> Optional[tuple[int, tuple]]:
        st = self.state[launch_id]
        st[0] -= 1
        st[2] += 1
        if errors:
            st[3] += errors
        return self._ripe(launch_id, st)

    def child(self, launch_id: int, count: int, errors: tuple = ()) -> Optional[tuple[int, tuple]]:
        st = self.state.get(launch_id)
        if st is None:
            st = self.state[launch_id] = [None, 0, 0, ()]
        st[1] -= 1
        st[2] += count
        if errors:
            st[3] += errors
        return self._ripe(launch_id, st)

    def _ripe(self, launch_id: int, st: list) -> Optional[tuple[int, tuple]]:
        if st[0] == 0 and st[1] == 0:
            del self.state[launch_id]
            return st[2], st[3]
        return None


def _launch_holding(ids: list, table: dict, pid: int) -> Optional[LaunchRecord]:
    """The launch of ``table`` (its ids sorted in ``ids``) that has a point ``pid``."""
    k = bisect.bisect_right(ids, pid) - 1
    if k < 0:
        return None
    rec = table[ids[k]]
    return rec if 0 <= pid - rec.base < rec.n else None


def _unsort(ids: list, launch_id: int) -> None:
    """Take ``launch_id`` out of the sorted ``ids``."""
    k = bisect.bisect_left(ids, launch_id)
    if k < len(ids) and ids[k] == launch_id:
        del ids[k]


class Launches:
    """The scheduler's handling of launches (a mixin of
    :class:`dagmpi.core.scheduler.Scheduler`, on its ``launches`` and ``_out``): O(1)
    per launch when its layout's ranks are a ``range`` of worker ranks (one
    instruction down the tree, one report back up it), nothing per point."""

    launches: dict
    workers: dict
    tasks: dict
    width: dict
    _out: list
    _parked: list
    _worker_span: Any
    _dead_ranks: set
    #: the ids of the launches in ``launches``, sorted (to find the launch of a point)
    _launch_ids: list
    lineage: bool
    _dead_order: list
    _relaid_layouts: dict
    _lineage_launches: dict
    _lineage_ids: list
    _cone: dict

    def _all_workers(self, ranks: Sequence[int]) -> list[int]:
        """Those of ``ranks`` that are not worker ranks (O(1) for a range inside the
        contiguous worker ranks, the usual case)."""
        workers = self.workers
        if isinstance(ranks, range) and ranks.step == 1 and len(ranks):
            span = self._worker_span  # (reset by every join and loss)
            if span is None:
                lo, hi = min(workers, default=0), max(workers, default=-1)
                span = self._worker_span = (lo, hi, len(workers))
            if span[1] - span[0] + 1 == span[2] and span[0] <= ranks[0] and ranks[-1] <= span[1]:
                return []
        return sorted(r for r in ranks if r not in workers)

    def _on_launch_submitted(self, ev: Any) -> None:
        if ev.launch_id in self.launches:
            raise ValueError(f"launch {ev.launch_id:#x} submitted twice")
        error = None
        reads = []
        for lid, proj in ev.reads:
            src = self.launches.get(lid)
            if src is None:
                error = UnknownDependency(lid)
                break
            if src.error is not None and not src.pending:  # (it failed: so does what reads it)
                from .failures import UpstreamFailure

                error = UpstreamFailure(src.id, src.name, src.error)
                break
            reads.append(Read(lid, src.base, src.n, src.layout, proj))
        if error is not None:
            reads = []  # (it never runs: it holds none of them)
        layout = ev.layout
        touched = layout.touched()
        if error is None and self._dead_ranks:
            dead = sorted(r for r in self._dead_ranks if r in touched)
            if dead and self.lineage:  # its points on dead ranks run on the ranks left
                # (each step of a time loop comes with the same layout: rewritten once per death)
                hit = self._relaid_layouts.get(id(layout))
                if hit is not None and hit[0] is layout:
                    layout = hit[1]
                else:
                    new = self._relayout(layout, self._dead_order)
                    if len(self._relaid_layouts) >= 64:
                        self._relaid_layouts.clear()
                    self._relaid_layouts[id(layout)] = (layout, new)
                    layout = new
                if layout is None:
                    layout = ev.layout
                else:
                    touched, dead = layout.touched(), []
            if dead:
                from .failures import RankLost

                error = RankLost(dead[0], f"its layout puts points on worker rank(s) {dead}, which died")
        rec = LaunchRecord(ev.launch_id, ev.base, ev.n, ev.name, layout, tuple(reads),
                           0 if error is not None else ev.n, watchers=(ev.submitter,) if ev.watch else (),
                           error=error, loop=ev.loop)
        if self.lineage:
            rec.spec, rec.reported = ev.spec, set()
        self.launches[rec.id] = rec
        bisect.insort(self._launch_ids, rec.id)
        self.n_launches += 1
        if error is not None:
            for w in rec.watchers:
                self._out.append(Deliver(w, rec.id, error=error))
            rec.watchers = ()
            return
        launches = self.launches
        for rd in reads:
            src = launches[rd.launch_id]
            src.readers.add(rec.id)
            if self.lineage:
                src.heirs += 1
        self.n_points += ev.n
        rec.ranks = touched
        if self._parked or self._all_workers(touched):
            # ranks that have not joined yet (the runtime checked they are worker ranks):
            # sent when they have, in submission order
            self._parked.append((rec, ev.spec))
            return
        self._dispatch_launch(rec, ev.spec)

    def _dispatch_launch(self, rec: LaunchRecord, spec: Any) -> None:
        rec.sent = rec.layout
        if self._dead_ranks:  # (the launches it reads may have moved points since it came)
            launches = self.launches
            rec.reads = tuple(
                rd if (src := launches.get(rd.launch_id)) is None or src.layout is rd.layout
                else Read(rd.launch_id, rd.base, rd.n, src.layout, rd.projection) for rd in rec.reads)
        if len(rec.ranks):
            self._out.append(ExecuteLaunch(rec.ranks, rec.id, rec.base, spec, rec.layout, rec.reads, rec.epoch))
        if rec.done:  # no points
            self._launch_ended(rec)

    def _unpark_launches(self) -> None:
        """Workers joined: send the parked launches whose ranks all have, in order."""
        parked = self._parked
        while parked:
            rec, spec = parked[0]
            if rec.id in self.launches and rec.error is None and self._all_workers(rec.ranks):
                return
            parked.pop(0)
            if rec.id in self.launches and rec.error is None:
                self._dispatch_launch(rec, spec)

    def _on_launch_done(self, ev: Any) -> None:
        rec = self.launches.get(ev.launch_id)
        if rec is None or not rec.pending or ev.epoch != rec.epoch:
            return  # (a loop's report of a run a death cut short: it runs again)
        if rec.reported is not None:  # (lineage mode: each rank reports its own points)
            if ev.rank in self._dead_ranks:
                return  # (sent before it died: its points are being computed again)
            rec.reported.add(ev.rank)
        rec.pending = max(0, rec.pending - ev.count)
        rec.nbytes += ev.nbytes
        if ev.errors and rec.error is None:
            rec.error = ev.errors[0][1]
        self.n_points_done += ev.count
        if rec.done:
            self._launch_ended(rec)

    def _launch_ended(self, rec: LaunchRecord) -> None:
        out = self._out
        for w in rec.watchers:
            out.append(Deliver(w, rec.id, error=rec.error) if rec.error is not None else
                       Deliver(w, rec.id, owner=SPREAD))
        rec.watchers = ()
        if rec.points:  # points read by plain tasks or waited for: they end with it
            points, rec.points = rec.points, []
            tasks = self.tasks
            rec.refs += 1  # (its points may let go of it meanwhile: released below, not in there)
            for pid in points:
                t = tasks.get(pid)
                if t is not None and t.state is _WAITING:
                    self._point_ends(t, rec)
                    if pid in tasks:  # (one only waited for: forgotten after its delivery)
                        self._maybe_forget(t)
            rec.refs -= 1
        if not (rec.loop and self.lineage):  # (a loop keeps what it read while it is held: below)
            self._let_go_of_reads(rec)
        self._maybe_release_launch(rec)

    def _let_go_of_reads(self, rec: LaunchRecord) -> None:
        """``rec`` no longer reads its launches: they may be released."""
        launches = self.launches
        for rd in rec.reads:
            src = launches.get(rd.launch_id)
            if src is not None:
                src.readers.discard(rec.id)
                self._maybe_release_launch(src)

    def _maybe_release_launch(self, rec: LaunchRecord) -> None:
        """Free a launch's values once it ended, nobody holds it and no launch reading it runs."""

        if rec.pending or rec.refs > 0 or rec.readers or self.launches.get(rec.id) is not rec:
            return
        del self.launches[rec.id]
        _unsort(self._launch_ids, rec.id)
        if len(rec.ranks):
            self._out.append(ReleaseLaunch(rec.ranks, rec.id))
        if rec.loop and self.lineage:
            # (under ULFM a loop that ended holds what it read until now: a death that
            # loses its values runs it again from them, see _launches_recover)
            self._let_go_of_reads(rec)
        if self.lineage:
            if rec.heirs > 0 and rec.error is None and not rec.loop:  # its points may have to be computed again
                self._lineage_launches[rec.id] = rec
                bisect.insort(self._lineage_ids, rec.id)
            else:
                self._drop_lineage(rec)

    # -------------------------------------------- lineage (ULFM)

    def _drop_lineage(self, rec: LaunchRecord) -> None:
        """Launch ``rec`` is released and nothing may need its points computed again:
        forget it, and let go of the launches it read (which may follow)."""
        stack = [rec]
        while stack:
            cur = stack.pop()
            if self._lineage_launches.pop(cur.id, None) is not None:
                _unsort(self._lineage_ids, cur.id)
            for rd in cur.reads:
                src = self.launches.get(rd.launch_id) or self._lineage_launches.get(rd.launch_id)
                if src is not None:
                    src.heirs -= 1
                    if src.heirs <= 0 and src.id in self._lineage_launches:
                        stack.append(src)

    def _launch_heir_gone(self, launch_id: int) -> None:
        """A point record of launch ``launch_id`` was deleted (lineage mode)."""
        rec = self.launches.get(launch_id)
        if rec is not None:
            rec.heirs -= 1
            return
        rec = self._lineage_launches.get(launch_id)
        if rec is not None:
            rec.heirs -= 1
            if rec.heirs <= 0:
                self._drop_lineage(rec)

    def _lineage_at(self, pid: int) -> Optional[LaunchRecord]:
        """The released launch kept for its lineage that has a point ``pid``."""
        return _launch_holding(self._lineage_ids, self._lineage_launches, pid)

    def _relayout(self, layout: Layout, deaths: Sequence[int]) -> Optional[Layout]:
        """``layout`` with the points of the dead ranks ``deaths`` (in the order they
        died) spread, one death after the other, over its ranks still alive then (over
        every live worker when none of its ranks is left; None: no worker is), in point
        order.  A launch submitted after the deaths gets the layout a launch of the
        same layout that lived through them got, so a time loop's moved blocks stay
        where they were computed again."""
        dead = set(self._dead_ranks).difference(deaths)
        for d in deaths:
            dead.add(d)
            touched = layout.touched()
            if d not in touched:
                continue
            live = [r for r in touched if r not in dead] or sorted(r for r in self.workers if r not in dead)
            if not live:
                return None
            table = [layout.rank_of(i) for i in range(layout.n)]
            k = 0
            for i, r in enumerate(table):
                if r == d:
                    table[i] = live[k % len(live)]
                    k += 1
            layout = Layout.of_table(table)
        return layout

    def _launches_recover(self, rank: int) -> list:
        """Lineage mode: worker ``rank`` died.  Every launch not released with points
        there gets a layout without it (its points spread over its ranks left); its
        points that were sent there become task records computed again from their
        lineage on their new ranks (pinned there: the other ranks hear where to ask,
        :class:`~dagmpi.core.events.MoveLaunch`), counted in the launch's ``pending``
        when the rank had not reported them.  Returns those records, FINISHED and
        ``gone``, for :meth:`Recovery._on_worker_lost` to compute again (or fail).  The
        launches that cannot be recovered (failed already, no worker left) fail, with
        the launches reading them that are not done."""

        hit = [rec for rec in self.launches.values() if rank in rec.layout.touched()]
        failing = []
        for rec in hit:
            if rec.error is not None or rec.spec is None or rec.loop and not rec.pending and not self._rerunnable(rec):
                # (a loop's points are its last step: computing one again would take every
                # step of its cone; a loop runs again from the start instead, below, when
                # it still runs or, ended, when what it read is held and no task reads its
                # points one by one; else it fails, said so)
                failing.append(rec)
            else:
                new = self._relayout(rec.layout, [rank])
                if new is None:
                    failing.append(rec)
                else:
                    rec.layout, rec.relaid = new, rec.layout
        # (first: what fails takes the launches reading it with it, which are then not
        # moved; a launch that failed already fails its readers still running too, whose
        # points on live ranks wait for its values there)
        why = f"worker rank {rank} died holding points of "
        self._fail_launches([(rec, RankLost(rank, why + (
            f"loop {rec.name!r}, which had ended and cannot run again (a task reads its points one by "
            "one, or what it read is gone; a loop's points are not computed again one by one: spawn "
            "the loop again, from the values it started from or from a checkpoint)" if rec.loop
            else f"launch {rec.name!r}"))) for rec in failing], readers=True)
        redo: list = []
        for rec in hit:
            old = rec.relaid
            if old is None:
                continue
            rec.relaid = None
            if rec.error is not None or rec.id not in self.launches:
                continue
            new = rec.layout
            if rec.sent is None:  # (parked: its points go to the new ranks when it is sent)
                rec.ranks = new.touched()
                continue
            rec.ranks = tuple(sorted(set(rec.ranks) - {rank} | set(new.touched())))
            if rec.loop:  # a loop (running, or ended and rerunnable): again from the start, on the ranks left
                rec.epoch += 1
                self.n_points_done -= rec.n - rec.pending  # (its points run again: counted then)
                rec.pending, rec.nbytes = rec.n, 0
                rec.reported = set()
                self.n_loops_restarted += 1
                self._out.append(MoveLaunch(rec.id, rec.base, new))  # (its readers ask the new ranks)
                self._dispatch_launch(rec, rec.spec)
                continue
            own = bool(rec.pending) and rank not in rec.reported  # (its own points, not reported)
            if rec.redo is None:
                rec.redo = {}
            for i in old.points_of(rank):
                # counted in ``pending``: a point the rank was sent and did not report, or
                # one moved there whose run again had not ended
                counted = own if rec.sent.rank_of(i) == rank else rec.redo.get(rec.base + i, False)
                t = self._lost_point(rec, i, counted, frozenset((new.rank_of(i),)))
                if t is not None:
                    redo.append(t)
            self._out.append(MoveLaunch(rec.id, rec.base, new))
        return redo

    def _rerunnable(self, rec: LaunchRecord) -> bool:
        """May loop ``rec``, which ended, run again from the start (its launches read are
        held and well, and none of its points has a task record of its own)?"""
        for rd in rec.reads:
            src = self.launches.get(rd.launch_id)
            if src is None or src.error is not None or rec.id not in src.readers:
                return False
        tasks = self.tasks
        return not any(pid in tasks for pid in range(rec.base, rec.base + rec.n))

    def _lost_point(self, rec: LaunchRecord, i: int, counted: bool, pin: frozenset) -> Any:
        """Point ``i`` of ``rec`` was sent to a rank that died: its record (made now if
        none), FINISHED and ``gone`` (to be computed again, on ``pin``), or None when
        it is being computed again already (a record placed anew: only re-pinned)."""

        pid = rec.base + i
        tasks = self.tasks
        t = tasks.get(pid)
        redo = rec.redo
        if t is None:
            t = TaskRecord(TaskSubmitted(pid, f"{rec.name}[{i}]", (), None, fn=rec.name))
            t.launch, t.held = rec.id, True
            rec.refs += 1
            rec.heirs += 1
            self.n_point_records += 1
            tasks[pid] = t
            self.width[0] = self.width.get(0, 0) + 1
            self.n_submitted += 1
            t.refs = 0
            t.state = _FINISHED
            self.n_finished += 1
        else:
            if t.state is _ERRORED:
                return None
            if pid in redo and t.state is not _FINISHED:
                t.ranks = pin  # (computed again already, its rank died too: elsewhere now)
                return None
            if t.state is _WAITING:  # waited for its launch to end: computed on its own now
                try:
                    rec.points.remove(pid)
                except ValueError:
                    pass
                t.waiting = 0
                t.state = _FINISHED
                self.n_finished += 1
            if not t.held:
                t.held = True
                rec.refs += 1
        t.gone, t.owner, t.nbytes = True, None, 0
        t.ranks = pin
        redo[pid] = counted or redo.get(pid, False)
        return t

    def _point_lineage(self, t: Any) -> bool:
        """Give lost point record ``t`` what it takes to run again: its launch's spec
        for its index and, as inputs, the records of the points its launch's
        projections give it (made now where none exists: a released launch's point is
        a plain record, FINISHED and ``gone``, computed again in turn).  False: its
        lineage is not kept, or an input failed."""
        src = self.launches.get(t.launch) if t.launch is not None else None
        if src is None:
            src = self._cone.pop(t.id, None)
            if src is None and t.launch is not None:
                src = self._lineage_launches.get(t.launch)
        if src is None or src.spec is None or src.loop:  # (a loop's point: see _launches_recover)
            return False
        i = t.id - src.base
        inputs = []
        for rd in src.reads:
            b = rd.base
            for j in rd.projection.points(i, rd.n):
                inputs.append(b + j)
        deps = tuple(dict.fromkeys(inputs))
        made = []
        for d in deps:
            dep = self._dep_record(d)
            if dep is not None:
                made.append(dep)
            if dep is None or dep.state is _ERRORED:
                for m in made:
                    self._maybe_forget(m)
                return False
        for dep in made:
            if dep.dependents:
                dep.dependents.append(t.id)
            else:
                dep.dependents = [t.id]
            dep.heirs += 1
        t.deps = deps
        t.spec = self.make_point_spec(src.spec, t.name, i, tuple(inputs))  # (no retries here:
        # its worker runs it again in place under its launch's policy, as the launch's points)
        return True

    def _dep_record(self, pid: int) -> Any:
        """The record of point ``pid`` as the input of a point computed again (see
        :meth:`_point_lineage`); None: no launch kept has it."""

        t = self.tasks.get(pid)
        if t is not None:
            if t.launch is not None and not t.held and t.gone:
                self._point_revive(t)
            return t
        if self._launch_at(pid) is not None:
            return self._point(pid)
        src = self._lineage_at(pid)
        if src is None:
            return None
        t = TaskRecord(TaskSubmitted(pid, f"{src.name}[{pid - src.base}]", (), None, fn=src.name))
        t.refs = 0
        t.state, t.gone = _FINISHED, True
        self.n_finished += 1
        self.tasks[pid] = t
        self.width[0] = self.width.get(0, 0) + 1
        self.n_submitted += 1
        self._cone[pid] = src
        return t

    def _detach_point(self, t: Any) -> None:
        """Point record ``t``, lost, is computed again outside its launch (which is
        released, kept for its lineage only, or failed: its layout does not move the
        point): it is a plain record from now on, whose value is freed on its own."""
        lid = t.launch
        if lid is None:
            return
        rec = self.launches.get(lid)
        if rec is not None and rec.error is None or rec is not None and rec.redo and t.id in rec.redo:
            return  # (its launch moved it: computed again as its point)
        if t.spec is None:  # (its lineage: its launch's, kept; see _point_lineage)
            src = rec or self._lineage_launches.get(lid)
            if src is not None:
                self._cone[t.id] = src
        held = t.held
        t.launch, t.held, t.ranks = None, False, None
        self._launch_heir_gone(lid)
        if held and rec is not None:
            rec.refs -= 1
            self._maybe_release_launch(rec)

    def _point_redone(self, t: Any, nbytes: int) -> None:
        """Lost point record ``t`` was computed again (its value on ``t.owner``)."""
        rec = self.launches.get(t.launch)
        if rec is None or not rec.redo or t.id not in rec.redo:
            return
        if rec.redo.pop(t.id) and rec.pending:
            rec.pending -= 1
            rec.nbytes += nbytes
            self.n_points_done += 1
            if rec.done:
                self._launch_ended(rec)

    def _point_redo_failed(self, t: Any, error: Any) -> None:
        """Lost point record ``t`` failed (or cannot be computed again): so does its
        launch, and the launches reading it that are not done."""
        rec = self.launches.get(t.launch)
        if rec is None or not rec.redo or t.id not in rec.redo:
            return
        rec.redo.pop(t.id)
        self._fail_launches([(rec, error)])

    # -------------------------------------------- points as task records

    def _launch_at(self, pid: int) -> Optional[LaunchRecord]:
        """The launch held here that has a point ``pid`` (None: none has)."""
        return _launch_holding(self._launch_ids, self.launches, pid)

    def _point(self, pid: int) -> Any:
        """The task record of point ``pid`` of a launch held here, made now (None: no
        launch holds such a point).  A point is materialised only when something
        reads it on its own: a plain task's input, a wait or a pickled handle.  The
        record holds a reference to its launch (whose ranks keep the value) until it
        is forgotten; it ends when its launch does, finished on the rank its layout
        gives it (or failed with the launch's error)."""

        rec = self._launch_at(pid)
        if rec is None:
            return None
        i = pid - rec.base
        t = TaskRecord(TaskSubmitted(pid, f"{rec.name}[{i}]", (), None, fn=rec.name))
        t.launch, t.held = rec.id, True
        rec.refs += 1
        if self.lineage:
            rec.heirs += 1
        self.n_point_records += 1
        self.tasks[pid] = t
        self.width[0] = self.width.get(0, 0) + 1
        self.n_submitted += 1
        if rec.pending:
            t.waiting = 1  # (its launch)
            rec.points.append(pid)
        else:  # (a reference held meanwhile: the caller is about to read it)
            self._point_ends(t, rec)
        t.refs = 0  # (the caller counts its own reference, or forgets it after a delivery)
        return t

    def _point_ends(self, t: Any, rec: LaunchRecord) -> None:
        """Point record ``t`` of ``rec``, which ended: finished or failed as it did."""
        t.waiting = 0
        if rec.error is not None:
            self._fail(t, rec.error)
            return
        self._set_state(t, _FINISHED)
        t.owner = rec.layout.rank_of(t.id - rec.base)
        t.nbytes = rec.nbytes // max(1, rec.n)
        self.n_finished += 1
        self.n_point_records_done += 1
        self._finished_news(t)

    def _point_forgotten(self, t: Any) -> None:
        """Nothing needs point record ``t`` any more: it lets go of its launch (its
        value is the launch's to free: no Release of its own)."""
        if not t.held:
            return
        t.held = False
        t.gone = True  # (its launch may free the value from now on)
        rec = self.launches.get(t.launch)
        if rec is not None:
            rec.refs -= 1
            self._maybe_release_launch(rec)

    def _point_revive(self, t: Any) -> bool:
        """A point record kept for lineage after it let go of its launch is read again
        (through a ``Point`` handle, which holds the launch, or by a task computed again
        after a rank died): if the launch ended well and still holds the value, on a
        live rank, the record holds the launch (again) and True is returned."""
        rec = self.launches.get(t.launch)
        # (a FINISHED point of a launch still running was computed again after its rank died)
        if rec is None or rec.error is not None or t.state is not _FINISHED:
            return False
        if rec.redo and t.id in rec.redo:
            return False  # (its rank died: being computed again)
        owner = rec.layout.rank_of(t.id - rec.base)
        if owner not in self.workers:
            return False
        if not t.held:
            rec.refs += 1
            t.held = True
        t.gone, t.owner = False, owner
        return True

    def _launch_handle(self, launch_id: int, delta: int) -> bool:
        """A handle to a launch was made (+1) or dropped (-1); False: not a launch."""
        rec = self.launches.get(launch_id)
        if rec is None:
            return False
        rec.refs += delta
        if delta < 0:
            self._maybe_release_launch(rec)
        return True

    def _launch_watch(self, launch_id: int, rank: int) -> bool:
        rec = self.launches.get(launch_id)
        if rec is None:
            return False
        if rec.done:
            self._out.append(Deliver(rank, rec.id, error=rec.error) if rec.error is not None else
                             Deliver(rank, rec.id, owner=SPREAD))
        elif rank not in rec.watchers:
            rec.watchers += (rank,)
        return True

    def _launches_lost(self, rank: int) -> list:
        """Worker ``rank`` died.  In lineage mode (ULFM) the launches with points there
        move them to the ranks left and compute again those it had (the records
        returned, see :meth:`_launches_recover`); otherwise, and for a launch that
        failed already, every launch with points there that is not released fails,
        and so does every launch not done that reads one of them (its points wait for
        values that are gone)."""

        self._dead_ranks.add(rank)
        self._dead_order.append(rank)
        self._relaid_layouts.clear()
        redo: list = []
        if self.lineage:
            redo = self._launches_recover(rank)
        else:
            hit = [rec for rec in self.launches.values() if rank in rec.ranks]
            for rec in hit:
                rec.ranks = tuple(r for r in rec.ranks if r != rank)
            self._fail_launches([(rec, RankLost(rank, f"worker rank {rank} died holding points of launch "
                                                      f"{rec.name!r}")) for rec in hit])
        if self._parked:
            self._unpark_launches()
        return redo

    def _fail_launches(self, stack: list, readers: bool = False) -> None:
        """Fail these ``(launch, error)`` and the launches not done that read them (and,
        with ``readers``, those reading the given launches that had failed already)."""

        launches = self.launches
        while stack:
            rec, error = stack.pop()
            if rec.id not in launches:
                continue
            if rec.error is not None and not rec.pending:  # (failed and done already)
                if readers:
                    for rid in rec.readers:
                        reader = launches.get(rid)
                        if reader is not None and reader.pending:
                            stack.append((reader, UpstreamFailure(rec.id, rec.name, rec.error)))
                continue
            if rec.error is None:
                rec.error = error
            rec.pending = 0
            for rid in rec.readers:
                reader = launches.get(rid)
                if reader is not None and reader.pending:
                    stack.append((reader, UpstreamFailure(rec.id, rec.name, rec.error)))
            self._launch_ended(rec)
