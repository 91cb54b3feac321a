"""Per-task options and scopes.

One design, used everywhere: options are an :class:`Options` object, given to
``dagmpi.spawn(f, *args, options=Options(...))``, or as keywords to the
``@dagmpi.task(...)`` decorator, which builds the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterable, Optional


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a task may run.  ``ranks=None`` means any worker rank."""

    ranks: Optional[frozenset[int]] = None

    def __post_init__(self) -> None:
        if self.ranks is not None:
            if not self.ranks:
                raise ValueError("a scope with an empty set of ranks can never run")
            bad = [r for r in self.ranks if not isinstance(r, int) or isinstance(r, bool) or r < 0]
            if bad:
                raise ValueError(f"scope ranks must be non-negative integers, got {bad}")


def scope(rank: Optional[int] = None, ranks: Optional[Iterable[int]] = None) -> Scope:
    """Restrict a task to one ``rank`` or a set of ``ranks`` (worker ranks)."""
    if rank is not None and ranks is not None:
        raise TypeError("give either rank= or ranks=, not both")
    if rank is not None:
        return Scope(frozenset([rank]))
    if ranks is not None:
        return Scope(frozenset(ranks))
    return Scope()


@dataclass(frozen=True, slots=True)
class Options:
    """Options of one task.

    name
        A label for logs and errors (default: the function's qualified name).
    priority
        Larger runs first among ready tasks (default 0).
    scope
        A :class:`Scope` (see :func:`dagmpi.scope`) restricting where it runs.
    """

    name: Optional[str] = None
    priority: int = 0
    scope: Optional[Scope] = None

    def __post_init__(self) -> None:
        if self.name is not None and not isinstance(self.name, str):
            raise TypeError(f"option name must be a str, got {type(self.name).__name__}")
        if not isinstance(self.priority, int) or isinstance(self.priority, bool):
            raise TypeError(f"option priority must be an int, got {self.priority!r}")
        if self.scope is not None and not isinstance(self.scope, Scope):
            raise TypeError("option scope must be made with dagmpi.scope(...), "
                            f"got {type(self.scope).__name__}")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "Options":
        """Build options from keywords, naming the valid ones on a typo."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise TypeError(f"unknown task option(s) {', '.join(unknown)}; valid options are: "
                            f"{', '.join(valid)}")
        return cls(**kwargs)


DEFAULT_OPTIONS = Options()
