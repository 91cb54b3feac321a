"""Random arrays: ``da.random.default_rng(seed).random((n, n), blocks=...)``.

Every block draws from its own stream, ``SeedSequence(seed, spawn_key=block
index)``, on the rank that owns it: the same seed and block shape give the same
values on any number of ranks (and, unlike one stream cut into pieces, no block
waits for another).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import blockops as ops
from . import core


class Generator:
    """A seeded source of random DArrays, after ``numpy.random.Generator``."""

    def __init__(self, seed: Any = None) -> None:
        if seed is None:
            seed = np.random.SeedSequence().entropy
        if isinstance(seed, np.random.SeedSequence):
            seed = seed.entropy
        try:
            np.random.SeedSequence(seed)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"a seed must be a non-negative integer (or a sequence of them), got {seed!r}: "
                            f"{exc}") from None
        self.seed = seed

    def __repr__(self) -> str:
        return f"dagmpi.array.random.Generator(seed={self.seed!r})"

    def _make(self, method: str, size: Any, blocks: Any, dtype: Any, args: tuple, kwargs: dict) -> core.DArray:
        if size is None:
            raise TypeError(f"{method}: give size= (the array's shape)")
        entropy = self.seed
        return core._create(size, blocks, dtype,
                            lambda idx, bs: (ops.random, method, entropy, idx, bs, args, kwargs), f"random.{method}")

    def random(self, size: Any = None, blocks: Any = "auto", dtype: Any = np.float64) -> core.DArray:
        """Floats uniform in [0, 1)."""
        dtype = np.dtype(dtype)
        return self._make("random", size, blocks, dtype, (), {"dtype": dtype.str})

    def standard_normal(self, size: Any = None, blocks: Any = "auto", dtype: Any = np.float64) -> core.DArray:
        """Floats from the standard normal distribution."""
        dtype = np.dtype(dtype)
        return self._make("standard_normal", size, blocks, dtype, (), {"dtype": dtype.str})

    def normal(self, loc: float = 0.0, scale: float = 1.0, size: Any = None, blocks: Any = "auto") -> core.DArray:
        return self._make("normal", size, blocks, np.float64, (loc, scale), {})

    def uniform(self, low: float = 0.0, high: float = 1.0, size: Any = None, blocks: Any = "auto") -> core.DArray:
        return self._make("uniform", size, blocks, np.float64, (low, high), {})

    def integers(self, low: int, high: Optional[int] = None, size: Any = None, blocks: Any = "auto",
                 dtype: Any = np.int64, endpoint: bool = False) -> core.DArray:
        """Integers in [low, high) (or [0, low) with one bound; ``endpoint=True``: inclusive)."""
        if high is None:
            low, high = 0, low
        if (high < low) or (high == low and not endpoint):
            raise ValueError(f"integers: low ({low}) must be below high ({high})")
        dtype = np.dtype(dtype)
        return self._make("integers", size, blocks, dtype, (low, high), {"dtype": dtype.str, "endpoint": endpoint})


def default_rng(seed: Any = None) -> Generator:
    """A :class:`Generator` seeded with ``seed`` (fresh entropy when ``None``)."""
    return Generator(seed)
