"""Live data 3x the workers' memory limit (DAGMPI_MEMORY_LIMIT set by the test): every
block stays alive until the end, so the workers must spill; the sums must be right.

argv[1]: blocks (1 MiB each)."""

import sys

import numpy as np

import dagmpi


def block(i: int) -> np.ndarray:
    return np.full(1 << 17, float(i))  # 1 MiB of float64


def total(*blocks: np.ndarray) -> float:
    return float(sum(b.sum() for b in blocks))


def main() -> None:
    n = int(sys.argv[1])
    dagmpi.init()
    blocks = [dagmpi.spawn(block, i) for i in range(n)]
    # every block is read again at the end: all of them are live at once
    firsts = [dagmpi.spawn(lambda b: float(b[0]), b) for b in blocks]
    got = dagmpi.fetch(dagmpi.spawn(total, *blocks))
    want = float(sum(range(n))) * (1 << 17)
    print("total", got, "ok" if got == want else f"WRONG (want {want})")
    print("firsts ok" if dagmpi.fetch(firsts) == [float(i) for i in range(n)] else "firsts WRONG")


if __name__ == "__main__":
    main()
