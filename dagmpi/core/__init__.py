"""The pure core of dagmpi: the scheduler state machine and its policy.

No I/O, no threads, no MPI, h5py or CuPy here (a layers contract in
``pyproject.toml`` checked by ``lint-imports`` keeps it so).  The runtime
feeds :class:`~dagmpi.core.scheduler.Scheduler` events
(:mod:`dagmpi.core.events`) and carries out the instructions it returns.
"""
