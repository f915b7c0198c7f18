"""How long to wait before trying again: the one retry policy, a pure function."""
from __future__ import annotations


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Exponential: base after the first failure, doubling each time, never above cap."""
    if attempts <= 0:
        return 0.0
    return min(cap, base * 2 ** min(attempts - 1, 32))
