"""Tile kernels of the linear algebra, on the memory the tiles are in: LAPACK/BLAS
(``dagmpi.kernels.cpu.tiles``) for host tiles, CuPy's cuBLAS/cuSOLVER
(``dagmpi.kernels.gpu.tiles``) for GPU tiles.  Each function here has the name and
signature of the kernel it calls; the choice is made on the worker, from its inputs."""

from __future__ import annotations

from typing import Any, Callable

from .blockops import _gpu_of

_NAMES = ("potrf", "trsm", "syrk", "gemm_nt", "gemm_acc", "trsm_left", "sub_matmul", "qr_block", "qr_stack",
          "first", "second", "qr_apply", "tril", "zeros")


def _arrays(args: tuple) -> list:
    out = []
    for x in args:
        if isinstance(x, tuple):
            out.extend(_arrays(x))
        elif hasattr(x, "shape"):
            out.append(x)
    return out


def _on(gpu: Any, args: tuple) -> tuple:
    """``args`` with host arrays (also inside tuples) copied to the GPU."""
    return tuple(_on(gpu, x) if isinstance(x, tuple) else
                 gpu.to_device(x) if type(x).__module__ == "numpy" and hasattr(x, "shape") and x.ndim else x
                 for x in args)


def _dispatch(name: str) -> Callable[..., Any]:
    def kernel(*args: Any, **kwargs: Any) -> Any:
        gpu = _gpu_of(_arrays(args))
        if gpu is not None and gpu.name == "cupy":
            from dagmpi.kernels.gpu import tiles as gpu_tiles

            return getattr(gpu_tiles, name)(*_on(gpu, args), **kwargs)  # (host tiles join them there)
        from dagmpi.kernels.cpu import tiles as cpu_tiles

        out = getattr(cpu_tiles, name)(*args, **kwargs)
        if gpu is not None:  # the simulated GPU: host kernels, results back in "device" memory
            place = gpu.to_device
            out = tuple(place(x) for x in out) if isinstance(out, tuple) else place(out)
        return out
    kernel.__name__ = kernel.__qualname__ = name
    kernel.__module__ = __name__
    kernel.__doc__ = f"``{name}`` of ``dagmpi.kernels.cpu.tiles`` or ``dagmpi.kernels.gpu.tiles``, by where the tiles are."
    return kernel


potrf = _dispatch("potrf")
trsm = _dispatch("trsm")
syrk = _dispatch("syrk")
gemm_nt = _dispatch("gemm_nt")
gemm_acc = _dispatch("gemm_acc")
trsm_left = _dispatch("trsm_left")
sub_matmul = _dispatch("sub_matmul")
qr_block = _dispatch("qr_block")
qr_stack = _dispatch("qr_stack")
first = _dispatch("first")
second = _dispatch("second")
qr_apply = _dispatch("qr_apply")
tril = _dispatch("tril")
zeros = _dispatch("zeros")


def gemm_sum(n: int, *tiles: Any) -> Any:
    """``c + a_1 @ b_1 + ... + a_n @ b_n`` (``tiles``: ``a_1..a_n, b_1..b_n``, then
    ``c`` or nothing): a run of a tiled matmul's k-sum in one task, each product by
    :func:`gemm_acc` (accumulated in place: in ``c``, else in the first product)."""
    if n < 1 or len(tiles) not in (2 * n, 2 * n + 1):
        raise ValueError(f"gemm_sum: {n} tile pairs need {2 * n} or {2 * n + 1} tiles, got {len(tiles)}")
    c = tiles[2 * n] if len(tiles) > 2 * n else None
    for a, b in zip(tiles[:n], tiles[n:2 * n]):
        c = gemm_acc(a, b, c)
    return c
