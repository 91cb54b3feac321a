"""CuPy / numba.cuda kernels, twins of :mod:`dagmpi.kernels.cpu` (need a GPU to run):
the same module names, functions and signatures, so a caller picks
``kernels.cpu.stencil.laplace5`` or ``kernels.gpu.stencil.laplace5`` by device.
``stencil`` and ``grayscott`` are numba.cuda kernels (tested under
``NUMBA_ENABLE_CUDASIM=1``), ``tiles`` is cuBLAS/cuSOLVER through CuPy, ``fused``
generates CuPy elementwise/reduction kernels; CuPy is imported only when used."""
