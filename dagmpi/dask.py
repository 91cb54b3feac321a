"""Run Dask collections on dagmpi: ``dask.compute(x, scheduler=dagmpi.get)``.

    import dask, dask.array as da, dagmpi
    x = da.random.random((20_000, 20_000), chunks=2_000)
    dask.compute((x + x.T).mean(axis=0), scheduler=dagmpi.get)
    with dask.config.set(scheduler=dagmpi.get): ...

:func:`get` is a Dask scheduler (the ``get(dsk, keys, **kwargs)`` of
``dask.threaded.get``): it turns the graph into dagmpi tasks, so block values
stay on the worker ranks and move rank to rank, placement and ordering are
dagmpi's, and a task's exception is raised with its original type.  It takes
today's graphs (``dask._task_spec`` ``Task``/``Alias``/``DataNode`` objects) and
the older tuple form (converted by Dask's own ``convert_legacy_graph``).

Before submission, linear chains of tasks (each with one dependency and one
dependent) are fused into one task (``fuse_linear_task_spec``, what Dask's
distributed scheduler does), and each task gets a priority from ``dask.order``
(dagmpi runs larger priorities first, so Dask's order is kept among ready
tasks).  Dask is imported only here, and only when ``get`` is called.
"""

from __future__ import annotations

import graphlib
from typing import Any, Mapping

from .errors import UpstreamError, is_task_failure
from .options import Options
from .runtime import context


def _run(node: Any, keys: tuple, *values: Any) -> Any:
    """Task: run one Dask task spec on the values of its dependencies."""
    return node(dict(zip(keys, values)))


def _data(value: Any) -> Any:
    """Task: a constant of the graph (kept on a worker like any other value)."""
    return value


def _root_cause(exc: UpstreamError, tasks: dict) -> BaseException:
    """The exception of the task that failed first (Dask raises it, not "upstream failed")."""
    by_id = {t.id: t for t in tasks.values()}
    seen = set()
    while isinstance(exc, UpstreamError) and exc.upstream_id in by_id and exc.upstream_id not in seen:
        seen.add(exc.upstream_id)
        cause = by_id[exc.upstream_id].exception()
        if cause is None:
            break
        exc = cause
    return exc


def get(dsk: Any, keys: Any, **kwargs: Any) -> Any:
    """Compute ``keys`` of the Dask graph ``dsk`` on dagmpi; returns their values with
    the nesting of ``keys`` (lists become tuples, as Dask's schedulers return).

    Keyword arguments Dask passes to schedulers (``num_workers``, ``pool``, ``cache``,
    ...) are accepted and ignored: the job's ranks and slots are the workers.
    """
    from dask._task_spec import Alias, DataNode, convert_legacy_graph, fuse_linear_task_spec
    from dask.core import flatten
    from dask.order import order
    from dask.utils import key_split

    if not isinstance(dsk, Mapping):
        dsk = dsk.__dask_graph__()
    wanted = list(flatten(keys)) if isinstance(keys, list) else [keys]
    missing = [k for k in wanted if k not in dsk]
    if missing:
        raise KeyError(f"dagmpi.get: the graph has no task for key(s) {missing[:5]}")
    graph = convert_legacy_graph(dict(dsk))
    try:
        graph = fuse_linear_task_spec(graph, wanted)
    except (ValueError, KeyError):  # Dask's fuser gives up on some graphs (e.g. a chain ending
        pass                          # in a node without output); they run unfused, as Dask's own
    deps = {k: node.dependencies for k, node in graph.items()}
    rank = order(graph) if len(graph) > 1 else {k: 0 for k in graph}
    top = max(rank.values(), default=0)
    client = context.current_client()
    tasks: dict[Any, Any] = {}
    for key in graphlib.TopologicalSorter(deps).static_order():
        node = graph.get(key)
        if node is None:
            raise KeyError(f"dagmpi.get: a task depends on key {key!r}, which the graph does not define")
        if isinstance(node, Alias):
            tasks[key] = tasks[node.target]
            continue
        opts = Options(name=key_split(key), priority=top - rank.get(key, 0))
        if isinstance(node, DataNode):
            tasks[key] = client.spawn(_data, (node.value,), {}, opts)
            continue
        dep_keys = tuple(sorted(deps[key], key=str))
        tasks[key] = client.spawn(_run, (node, dep_keys, *(tasks[d] for d in dep_keys)), {}, opts)
    # a constant asked for as it is comes back as that very object (as from Dask's own schedulers)
    consts = {k: graph[k].value for k in wanted if isinstance(graph.get(k), DataNode)}
    computed = [k for k in wanted if k not in consts]
    try:
        values = dict(zip(computed, client.fetch_many([tasks[k] for k in computed])))
    except UpstreamError as exc:
        raise _root_cause(exc, tasks).with_traceback(None) from None
    except BaseException as exc:
        if is_task_failure(exc):  # the task's own error: how dagmpi delivered it is no news
            raise exc.with_traceback(None)
        raise
    values.update(consts)

    def nest(k: Any) -> Any:
        return tuple(nest(x) for x in k) if isinstance(k, list) else values[k]

    return nest(keys)
