"""The interface every transport implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, NamedTuple, NoReturn


class Transport(ABC):
    """One rank's endpoint: send messages to ranks, receive messages from them.

    A message is any picklable object (the runtime sends lists of tuples).
    ``pickle.PickleBuffer`` objects inside a message are moved without copying
    them into the pickle stream.  ``send``, ``poll`` and ``flush`` are called
    by one thread (the rank's communication loop); ``wakeup`` may be called by
    any thread to end a ``poll`` early.
    """

    rank: int
    size: int
    #: True when messages cross process boundaries, so values must be pickled.
    serializes: bool = True
    #: Human-readable name ("mpi", "inproc").
    name: str = "?"
    #: The job survives the death of a rank (MPI with ULFM): :meth:`poll` then
    #: reports a dead rank ``r`` once, as ``(r, [RankDead()])``, and messages to
    #: dead ranks are dropped.
    fault_tolerant: bool = False

    @abstractmethod
    def send(self, dest: int, msg: Any) -> None:
        """Queue ``msg`` for rank ``dest``; returns without waiting for delivery."""

    @abstractmethod
    def poll(self, timeout: float, spin: bool = False) -> list[tuple[int, Any]]:
        """Return received ``(source, msg)`` pairs, waiting up to ``timeout`` seconds.

        Returns early (possibly with nothing) when :meth:`wakeup` is called.
        Waiting must not spin the CPU for long: idle ranks share cores with busy
        ones.  ``spin=True`` allows a short spin after recent traffic, for a
        caller that knows no other thread of this process needs the GIL.
        """

    @abstractmethod
    def wakeup(self) -> None:
        """Make a concurrent or the next :meth:`poll` return promptly (thread-safe)."""

    def wakeup_from_signal(self) -> None:
        """Like :meth:`wakeup`, but safe inside a signal handler (takes no lock).
        Default: nothing (the loop notices the flag at its next poll timeout)."""

    def sending(self) -> bool:
        """Are sends of this rank still in flight (they move only while it calls MPI)?"""
        return False

    def flush(self) -> None:
        """Wait until every message sent so far has left this rank."""

    def close(self) -> None:
        """Release the transport's resources (after :meth:`flush`)."""

    @abstractmethod
    def abort(self, code: int = 1) -> NoReturn:
        """End the whole job at once (every rank) with exit status ``code``."""


class RankDead(NamedTuple):
    """Reported by :meth:`Transport.poll` as ``(rank, [RankDead()])`` when ``rank``
    died (fault-tolerant transports only); never sent by a rank."""


class Abort(NamedTuple):
    """Rank 0 ends the job under ULFM (where ``MPI_Abort`` would not): the
    receiver flushes its output and kills itself.  Sent by the transport."""

    code: int
