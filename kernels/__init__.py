"""Compute kernels of dagmpi, installed as ``dagmpi.kernels``.

``cpu/``: Numba kernels (``@njit(cache=True, nogil=True)``) for the data layer's
hot loops; ``gpu/``: their CuPy / numba.cuda twins, with the same signatures.
Kernels are plain functions on arrays: they import nothing from the runtime,
so a task calls them on whatever rank it runs on.  Importing this package
imports neither Numba nor CuPy.
"""
