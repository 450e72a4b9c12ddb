"""Array sizes that keep the number of JAX compilations small."""

from __future__ import annotations


def power_of_two(n: int, minimum: int = 1) -> int:
    """Smallest power of two >= max(n, minimum) (an int): pad arrays to it so fits of similar size share one compiled shape."""
    return 1 << (max(int(n), int(minimum)) - 1).bit_length()
