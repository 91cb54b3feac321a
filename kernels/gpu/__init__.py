"""CuPy / numba.cuda kernels, twins of :mod:`dagmpi.kernels.cpu` (need a GPU to run)."""
