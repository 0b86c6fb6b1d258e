"""Parameter draws that are either random or, for the mean template, the mean value."""

from __future__ import annotations

import numpy as np


class Draw:
    """Draws per-subject parameters from ``rng``; with ``rng=None`` returns mean values.

    Every method consumes the same number of random numbers whatever its result, so the
    sequence of parameters of a subject does not depend on earlier values.
    """

    def __init__(self, rng: np.random.Generator | None) -> None:
        self.rng = rng

    def uniform(self, lo: float, hi: float) -> float:
        """A value uniform in ``[lo, hi]`` (mean: the midpoint)."""
        if self.rng is None:
            return 0.5 * (lo + hi)
        return float(self.rng.uniform(lo, hi))

    def uniforms(self, lo: float, hi: float, n: int) -> list[float]:
        """``n`` independent :meth:`uniform` values."""
        return [self.uniform(lo, hi) for _ in range(n)]

    def jitter(self, sd: float) -> float:
        """A factor ``1 + e`` with ``e`` normal of std ``sd`` clipped to ``2.5 sd`` (mean 1)."""
        if self.rng is None:
            return 1.0
        return float(1.0 + np.clip(self.rng.normal(0.0, sd), -2.5 * sd, 2.5 * sd))
