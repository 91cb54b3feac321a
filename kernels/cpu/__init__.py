"""Numba CPU kernels (imported by the data layer when it runs a block)."""
