"""Tests of shapes.py."""

from flashsync_bayes.shapes import power_of_two


def test_power_of_two_rounds_up_to_at_least_the_minimum():
    assert [power_of_two(n) for n in (0, 1, 2, 3, 4, 5, 1000)] == [1, 1, 2, 4, 4, 8, 1024]
    assert [power_of_two(n, 8) for n in (0, 1, 8, 9)] == [8, 8, 8, 16]
    assert power_of_two(256, 256) == 256 and power_of_two(257, 256) == 512
