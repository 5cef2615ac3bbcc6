"""Small statistics shared by every reader of results: how sure a measured proportion is."""
from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson_interval(proportion: float, samples: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a proportion measured on `samples` trials (accuracy, agreement).

    Unlike the normal approximation it stays inside [0, 1] and is honest near 0% and 100%.
    """
    if samples <= 0:
        return 0.0, 1.0
    denominator = 1 + z * z / samples
    centre = (proportion + z * z / (2 * samples)) / denominator
    half = z * math.sqrt(proportion * (1 - proportion) / samples + z * z / (4 * samples * samples)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
