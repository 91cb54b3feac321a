"""``python -m dagmpi``: see :mod:`dagmpi.cli`."""

import sys

try:
    from .cli import main
except BaseException:  # a broken install or environment on this rank
    # Under an MPI launcher the other ranks would wait for this one at start-up:
    # say what failed and end the whole job now.
    import os
    import traceback

    launched = any(v in os.environ for v in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"))
    if not launched:
        raise
    rank = next((os.environ[v] for v in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")
                 if v in os.environ), "?")
    sys.stderr.write(f"dagmpi: rank {rank} could not import dagmpi; ending the job\n{traceback.format_exc()}")
    sys.stderr.flush()
    try:
        from mpi4py import MPI

        MPI.COMM_WORLD.Abort(1)
    finally:
        os._exit(1)

sys.exit(main())
