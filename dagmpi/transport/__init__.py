"""Transports move messages between ranks; the runtime is written against :class:`Transport`.

``inproc`` (threads and queues, one process) and ``mpi`` (mpi4py; the only
module that imports it) implement the same interface.
"""

from .base import Transport

__all__ = ["Transport"]
