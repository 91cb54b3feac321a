"""GPUs and devices: what a rank offers (``devices``); with ``kernels/gpu`` the
only place that imports CuPy or numba.cuda (lazily)."""
