"""What processors this rank has: CPU slots, GPUs, memory.  CuPy is imported
here (to count GPUs) and in :mod:`dagmpi.gpu.backend` only.

GPUs come from CuPy when ``cupy.cuda.is_available()``; CUDA itself honours
``CUDA_VISIBLE_DEVICES``.  When several ranks of a node see the same GPUs,
each takes its share by node-local rank (``MPI_LOCALRANKID``,
``OMPI_COMM_WORLD_LOCAL_RANK`` or ``SLURM_LOCALID``), so two ranks never
claim one GPU; ``DAGMPI_GPUS=0,1`` (or ``none``) overrides the detection.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional

_LOCAL_RANK_VARS = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "PMI_LOCAL_RANK")
_LOCAL_SIZE_VARS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE")


def _env_int(names: tuple[str, ...], environ: Mapping[str, str], default: int) -> int:
    for n in names:
        v = environ.get(n, "")
        if v.strip().isdigit():
            return int(v)
    return default


def visible_gpu_count(environ: Optional[Mapping[str, str]] = None) -> int:
    """GPUs CUDA shows this process (0 without CuPy or without a usable GPU);
    under ``DAGMPI_GPU_SIM`` the simulated ones (``DAGMPI_GPU_SIM_COUNT``, default 1)."""
    from .backend import sim_enabled

    env = os.environ if environ is None else environ
    if env.get("DAGMPI_GPU_SIM"):
        return max(0, int(env.get("DAGMPI_GPU_SIM_COUNT", "1"))) if sim_enabled(env) else 0
    try:
        import cupy
    except Exception:  # no CuPy: a CPU-only rank
        return 0
    try:
        if not cupy.cuda.is_available():
            return 0
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def local_gpus(environ: Optional[Mapping[str, str]] = None, count: Optional[int] = None) -> list[int]:
    """The device ids this rank owns."""
    environ = os.environ if environ is None else environ
    forced = environ.get("DAGMPI_GPUS")
    if forced is not None:
        forced = forced.strip().lower()
        if forced in ("", "none"):
            return []
        try:
            return [int(x) for x in forced.split(",")]
        except ValueError:
            raise ValueError(f"DAGMPI_GPUS must be a comma-separated list of device ids or 'none', "
                             f"not {environ['DAGMPI_GPUS']!r}") from None
    n = visible_gpu_count(environ) if count is None else count
    if n == 0:
        return []
    local_rank = _env_int(_LOCAL_RANK_VARS, environ, 0)
    local_size = _env_int(_LOCAL_SIZE_VARS, environ, 1)
    if local_size <= n:  # enough GPUs: a disjoint share each
        share = n // max(local_size, 1)
        return list(range(local_rank * share, (local_rank + 1) * share)) if local_rank < local_size else []
    return [local_rank % n]  # more ranks than GPUs: they share round-robin


def gpu_sharers(environ: Optional[Mapping[str, str]] = None, count: Optional[int] = None) -> int:
    """How many ranks of this node share each of this rank's GPUs (more ranks than GPUs: round-robin)."""
    environ = os.environ if environ is None else environ
    n = visible_gpu_count(environ) if count is None else count
    local_size = _env_int(_LOCAL_SIZE_VARS, environ, 1)
    if n == 0 or local_size <= n:
        return 1
    local_rank = _env_int(_LOCAL_RANK_VARS, environ, 0)
    return len(range(local_rank % n, local_size, n))


def memory_bytes(environ: Optional[Mapping[str, str]] = None) -> int:
    """This rank's share of the node's physical memory."""
    environ = os.environ if environ is None else environ
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
    return total // max(1, _env_int(_LOCAL_SIZE_VARS, environ, 1))




def offers(slots: int, extra: str = "", environ: Optional[Mapping[str, str]] = None) -> tuple[dict, list[int]]:
    """What a worker rank offers: ``({"memory": bytes, custom...}, gpu ids)``.

    ``extra`` is ``DAGMPI_RESOURCES``-style text: ``"licence=2,scratch=100GB"``.
    """
    from ..options import parse_amount

    res: dict = {"memory": memory_bytes(environ)}
    for item in filter(None, (x.strip() for x in extra.split(","))):
        name, sep, amount = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"resources: cannot read {item!r}; write name=amount, e.g. 'licence=2'")
        res[name.strip()] = parse_amount(name.strip(), amount.strip())
    return res, local_gpus(environ)
