"""Per-task options and scopes.

One design, used everywhere: options are an :class:`Options` object, given to
``dagmpi.spawn(f, *args, options=Options(...))``, or as keywords to the
``@dagmpi.task(...)`` decorator, which builds the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterable, Mapping, Optional


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a task may run.

    ``ranks``: only these worker ranks (``None``: any).  ``gpu``: only on a
    rank that owns a GPU (the task holds one GPU while it runs).  ``near``: the
    id of a task whose result this task should run next to (on its owner).
    ``prefer``: a worker rank to run on while it is alive (owner-computes for
    data that does not exist yet); unlike ``ranks`` it never makes a task
    impossible: if that rank is gone, any rank will do.
    """

    ranks: Optional[frozenset[int]] = None
    gpu: bool = False
    near: Optional[int] = None
    prefer: Optional[int] = None

    def __post_init__(self) -> None:
        if self.ranks is not None:
            if not isinstance(self.ranks, frozenset):  # Scope(ranks=[1, 2]) or Scope(ranks=3)
                rs = [self.ranks] if isinstance(self.ranks, int) else self.ranks
                try:
                    object.__setattr__(self, "ranks", frozenset(rs))
                except TypeError:
                    raise TypeError(f"scope ranks must be an iterable of integers, got {self.ranks!r}") from None
            if not self.ranks:
                raise ValueError("a scope with an empty set of ranks can never run")
            bad = [r for r in self.ranks if not isinstance(r, int) or isinstance(r, bool) or r < 0]
            if bad:
                raise ValueError(f"scope ranks must be non-negative integers, got {bad}")


def scope(rank: Optional[int] = None, ranks: Optional[Iterable[int]] = None, *,
          gpu: bool = False, cpu: bool = False, near: Any = None, prefer: Optional[int] = None) -> Scope:
    """Where a task may run.

    ``rank=``/``ranks=``: only on these worker ranks.  ``gpu=True``: only on a
    rank with a GPU (never on a CPU-only rank).  ``cpu=True``: on a CPU slot
    (the default; it cannot be combined with ``gpu=True``).  ``near=task``: on
    the rank that holds that task's result (when it is known at placement).
    ``prefer=rank``: on that rank while it is alive, elsewhere if it is not.
    """
    if rank is not None and ranks is not None:
        raise TypeError("give either rank= or ranks=, not both")
    if gpu and cpu:
        raise ValueError("impossible scope: gpu=True and cpu=True exclude each other")
    near_id = None
    if near is not None:
        from .task import Task

        if not isinstance(near, Task):
            raise TypeError(f"scope(near=...) takes a Task, got {type(near).__name__}")
        near_id = near.id
    if prefer is not None and (not isinstance(prefer, int) or isinstance(prefer, bool) or prefer < 0):
        raise ValueError(f"scope(prefer=...) takes a worker rank (an integer >= 0), got {prefer!r}")
    return Scope(frozenset([rank]) if rank is not None else ranks, bool(gpu), near_id,
                 prefer)  # (Scope normalises)


_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12,
          "tb": 1e12, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def parse_amount(name: str, value: Any) -> float:
    """A resource amount: a number, or for sizes a string like ``"4GiB"``."""
    if isinstance(value, bool):
        raise TypeError(f"resource {name!r}: amount must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        amount = float(value)
    elif isinstance(value, str):
        import re

        m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", value)
        if not m or m.group(2).lower() not in _UNITS:
            raise ValueError(f"resource {name!r}: cannot read the amount {value!r} "
                             "(use a number or a size like '4GiB', '512MB')")
        amount = float(m.group(1)) * _UNITS[m.group(2).lower()]
    else:
        raise TypeError(f"resource {name!r}: amount must be a number or a size string, got "
                        f"{type(value).__name__}")
    if amount < 0:
        raise ValueError(f"resource {name!r}: amount must be >= 0, got {value!r}")
    return amount


@dataclass(frozen=True, slots=True)
class Options:
    """Options of one task.

    name
        A label for logs and errors (default: the function's qualified name).
    priority
        Larger runs first among ready tasks (default 0).
    scope
        A :class:`Scope` (see :func:`dagmpi.scope`) restricting where it runs.
    resources
        What the task holds while it runs, e.g. ``{"gpu": 1, "memory": "4GiB"}``
        or a custom name a rank advertises (``DAGMPI_RESOURCES="licence=2"``).
        The scheduler places it only where that much is free, and it waits while
        other tasks hold it; a request no rank can ever meet is refused at spawn.
    retries
        How many times to re-run the task if it raises (default: the run-wide
        ``DAGMPI_RETRIES``, else 0), on another rank when one is free.
    retry_on
        Exception types that are retried (default: any ``Exception``).
    checkpoint
        Save the result in the run's checkpoint (``dagmpi.init(checkpoint=...)``)
        and restore it instead of running on a rerun (default: the run's policy).
    key
        The task's checkpoint key, instead of the hash of its function and arguments.
    move
        Array arguments arrive in the memory of the processor the task runs on:
        a ``scope(gpu=True)`` task gets device (CuPy) arrays, a CPU task numpy
        arrays, copied on its rank (default ``True``).  ``False``: as they are.
    timeout
        Seconds the task may run; past that it fails with ``TimeoutError`` (and
        is retried if allowed).  Python cannot kill a thread, so its rank gets
        no new work until the stuck call returns; its late result is dropped.
    """

    name: Optional[str] = None
    priority: int = 0
    scope: Optional[Scope] = None
    resources: Optional[Mapping[str, Any]] = None
    retries: Optional[int] = None
    retry_on: Optional[tuple] = None
    timeout: Optional[float] = None
    checkpoint: Optional[bool] = None
    key: Optional[str] = None
    move: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.move, bool):
            raise TypeError(f"option move must be True or False, got {self.move!r}")
        if self.name is not None and not isinstance(self.name, str):
            raise TypeError(f"option name must be a str, got {type(self.name).__name__}")
        if not isinstance(self.priority, int) or isinstance(self.priority, bool):
            raise TypeError(f"option priority must be an int, got {self.priority!r}")
        if self.scope is not None and not isinstance(self.scope, Scope):
            raise TypeError("option scope must be made with dagmpi.scope(...), "
                            f"got {type(self.scope).__name__}")
        if self.retries is not None and (not isinstance(self.retries, int) or isinstance(self.retries, bool)
                                         or self.retries < 0):
            raise ValueError(f"option retries must be an int >= 0, got {self.retries!r}")
        if self.retry_on is not None:
            types = self.retry_on if isinstance(self.retry_on, tuple) else (self.retry_on,)
            if not types or not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
                raise TypeError(f"option retry_on must be an exception type or a tuple of them, "
                                f"got {self.retry_on!r}")
            object.__setattr__(self, "retry_on", types)
        if self.timeout is not None and (isinstance(self.timeout, bool) or
                                         not isinstance(self.timeout, (int, float)) or not self.timeout > 0):
            raise ValueError(f"option timeout must be a number of seconds > 0, got {self.timeout!r}")
        if self.checkpoint is not None and not isinstance(self.checkpoint, bool):
            raise TypeError(f"option checkpoint must be True or False, got {self.checkpoint!r}")
        if self.key is not None and (not isinstance(self.key, str) or not self.key):
            raise TypeError(f"option key must be a non-empty str, got {self.key!r}")
        if self.resources is not None:
            if not isinstance(self.resources, Mapping):
                raise TypeError(f"option resources must be a dict like {{'gpu': 1, 'memory': '4GiB'}}, "
                                f"got {type(self.resources).__name__}")
            for k, v in self.resources.items():
                if not isinstance(k, str):
                    raise TypeError(f"resource names must be strings, got {k!r}")
                parse_amount(k, v)

    def needs(self) -> Optional[dict[str, float]]:
        """The resources a task holds while it runs (``None``: one CPU slot only)."""
        if self.resources is None and (self.scope is None or not self.scope.gpu):
            return None
        out = {k: parse_amount(k, v) for k, v in (self.resources or {}).items()}
        if self.scope is not None and self.scope.gpu:
            out["gpu"] = max(out.get("gpu", 0.0), 1.0)
        return {k: v for k, v in out.items() if v > 0} or None

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "Options":
        """Build options from keywords, naming the valid ones on a typo."""
        return cls(**kwargs)


_dataclass_init = Options.__init__
_OPTION_NAMES = tuple(f.name for f in fields(Options))


def _checked_init(self: Options, *args: Any, **kwargs: Any) -> None:
    unknown = sorted(set(kwargs) - set(_OPTION_NAMES))
    if unknown:
        import difflib

        hints = [f"{u!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(u, _OPTION_NAMES, 1))
                 else repr(u) for u in unknown]
        raise TypeError(f"unknown task option(s) {', '.join(hints)}; valid options are: "
                        f"{', '.join(_OPTION_NAMES)}")
    _dataclass_init(self, *args, **kwargs)


# Options(priorty=5) names the valid options, like @dagmpi.task(priorty=5) does
_checked_init.__doc__ = _dataclass_init.__doc__
Options.__init__ = _checked_init  # type: ignore[method-assign]

DEFAULT_OPTIONS = Options()
