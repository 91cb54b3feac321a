"""A Gantt chart of a :class:`~.records.Trace`: one row per (rank, track),
one bar per run, coloured by function; failed runs hatched in red; instants
(failures, retries, rank deaths, checkpoint writes...) as vertical lines.

matplotlib is imported when :func:`plot` runs, and only its object API is used
(a ``Figure`` on an Agg canvas): nothing touches pyplot's global state, so
plotting from a thread or twice in a process is safe.
"""

from __future__ import annotations

from .chrome import time_origin
from .records import Trace

#: Functions with a colour of their own (by total run time); the rest share "other".
TOP_NAMES = 12
DPI = 120
WIDTH_IN = 13.0
#: Instant kinds -> line colour (unknown kinds: grey).
KIND_COLOURS = {"failure": "#d62728", "retry": "#ff7f0e", "rank-death": "#000000",
                "checkpoint-write": "#2ca02c", "restored": "#17becf", "preempted": "#9467bd",
                "spill": "#8c564b"}
_OTHER = "other"
_OTHER_COLOUR = "#b0b0b0"
_LABEL_CHARS = 28


def figure_size(nrows: int, nlegend: int) -> tuple[float, float]:
    """(width, height) in inches for ``nrows`` rows of bars and ``nlegend`` legend entries."""
    return WIDTH_IN, round(max(3.0, 0.28 * nrows + 1.6, 0.21 * nlegend + 1.2), 2)


def _palette(n: int) -> list:
    """``n`` (<= 18) distinct colours: tab10's, then tab20's light variants; no red (failures are red)."""
    from matplotlib import colormaps

    tab20 = colormaps["tab20"].colors
    dark = [tab20[i] for i in range(0, 20, 2) if i != 6]
    light = [tab20[i] for i in range(1, 20, 2) if i != 7]
    return (dark + light)[:n]


def _short(name: str) -> str:
    return name if len(name) <= _LABEL_CHARS else name[:_LABEL_CHARS - 1] + "\u2026"


def plot(trace: Trace, path: str, *, title: str | None = None) -> None:
    """Draw the trace's Gantt chart and save it to ``path`` as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    t0 = time_origin(trace)
    rows = sorted({(r.rank, r.track) for r in trace.runs})
    row_of = {key: k for k, key in enumerate(rows)}

    totals: dict[str, float] = {}
    for run in trace.runs:
        totals[run.name] = totals.get(run.name, 0.0) + (run.end - run.start)
    ranked = sorted(totals, key=lambda n: (-totals[n], n))
    top = ranked if len(ranked) <= TOP_NAMES + 1 else ranked[:TOP_NAMES]  # no "other" of one function
    colour = dict(zip(top, _palette(len(top))))
    has_other = len(ranked) > len(top)

    kinds = sorted({i.kind for i in trace.instants})
    any_failed = any(not r.ok for r in trace.runs)
    nlegend = len(top) + has_other + any_failed + len(kinds)

    fig = Figure(figsize=figure_size(len(rows), nlegend), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    # Bars: one broken_barh per (row, colour, ok) keeps thousands of runs cheap to draw.
    groups: dict[tuple[int, str, bool], list[tuple[float, float]]] = {}
    for run in trace.runs:
        key = (row_of[(run.rank, run.track)], run.name if run.name in colour else _OTHER, run.ok)
        groups.setdefault(key, []).append((run.start - t0, max(run.end - run.start, 0.0)))
    for (row, name, ok), spans in groups.items():
        face = colour.get(name, _OTHER_COLOUR)
        if ok:
            ax.broken_barh(spans, (row - 0.4, 0.8), facecolors=face, edgecolor="none", linewidth=0)
        else:
            ax.broken_barh(spans, (row - 0.4, 0.8), facecolors=face, edgecolor="#d62728", linewidth=1.2,
                           hatch="////")

    # Ranks: alternate shading, so that a rank's rows read as one group.
    rank_rows: dict[int, list[int]] = {}
    for (rank, _track), row in row_of.items():
        rank_rows.setdefault(rank, []).append(row)
    for k, rank in enumerate(sorted(rank_rows)):
        if k % 2:
            ax.axhspan(min(rank_rows[rank]) - 0.5, max(rank_rows[rank]) + 0.5, color="#f0f0f0", zorder=0)

    # Instants: a line over their rank's rows; for a rank without rows (the driver) a mark on the
    # top edge and a faint line over the whole chart, so that many of them do not hide the bars.
    for inst in trace.instants:
        x, c = inst.time - t0, KIND_COLOURS.get(inst.kind, "#7f7f7f")
        span = rank_rows.get(inst.rank)
        if span:
            ax.vlines(x, min(span) - 0.5, max(span) + 0.5, colors=c, linewidth=1.0, linestyles="--", alpha=0.8,
                      zorder=3)
        else:
            ax.axvline(x, color=c, linewidth=0.8, linestyle="--", alpha=0.3, zorder=3)
            ax.plot([x], [1.0], marker="v", color=c, markersize=6, transform=ax.get_xaxis_transform(),
                    clip_on=False, zorder=4)

    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"rank {rank} / {'inline' if track == 0 else f'slot {track}'}" for rank, track in rows],
                       fontsize=9 if len(rows) <= 30 else 7)
    ax.set_ylim(max(len(rows), 1) - 0.5, -0.5)  # rank 0 at the top
    ax.tick_params(axis="y", length=0)
    end = max([r.end for r in trace.runs] + [i.time for i in trace.instants], default=t0 + 1.0) - t0
    first = min([r.start - t0 for r in trace.runs], default=0.0)
    ax.set_xlim(min(0.0, first), end * 1.01 if end > 0 else 1.0)
    ax.set_xlabel("seconds since start")
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    handles = [Patch(facecolor=colour[n], label=_short(n)) for n in top]
    if has_other:
        handles.append(Patch(facecolor=_OTHER_COLOUR, label=f"{_OTHER} ({len(ranked) - len(top)} functions)"))
    if any_failed:
        handles.append(Patch(facecolor="white", edgecolor="#d62728", hatch="////", label="failed run"))
    handles += [Line2D([], [], color=KIND_COLOURS.get(k, "#7f7f7f"), linestyle="--", label=k) for k in kinds]
    if handles:
        fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)

    if title is None:
        ntasks = len({r.task_id for r in trace.runs})
        nranks = len(rank_rows)
        makespan = max((r.end for r in trace.runs), default=0.0) - min((r.start for r in trace.runs), default=0.0)
        title = (f"{len(trace.runs)} runs of {ntasks} tasks on {nranks} rank{'s' * (nranks != 1)}, "
                 f"makespan {makespan:.3g} s")
    ax.set_title(title, fontsize=11, loc="left", pad=12)  # room for the driver's instant marks
    fig.savefig(path, dpi=DPI, format="png")
