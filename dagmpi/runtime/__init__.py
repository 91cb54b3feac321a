"""The runtime: the loops that own the transport and threads.

``driver`` (rank 0: the scheduler's loop), ``worker`` (the other ranks),
``client`` (spawn/fetch on any rank), ``jobs`` (a worker's units of work and
threads), ``messages`` (every message that crosses a process boundary, named),
``context`` (start-up, shut-down, the current client).
"""
