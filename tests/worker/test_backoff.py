"""The reconnect policy of docs/protocol.md: 1 s doubling to 30 s, jitter in [0.5, 1.5],
reset after 60 s connected. Time and randomness are passed in."""

from __future__ import annotations

import pytest

from browsergrid.worker import Backoff


def waits(backoff: Backoff, count: int, now: float = 0.0) -> list[float]:
    return [backoff.disconnected(now) for _ in range(count)]


def test_waits_double_up_to_the_cap() -> None:
    backoff = Backoff(random_=lambda: 0.5)
    assert waits(backoff, 7) == [1, 2, 4, 8, 16, 30, 30]


@pytest.mark.parametrize(
    ("random", "expected"),
    [
        (0.0, [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]),
        (0.999, [1.499, 2.998, 5.996, 11.992, 23.984, 44.97, 44.97]),
    ],
)
def test_jitter_bounds(random: float, expected: list[float]) -> None:
    backoff = Backoff(random_=lambda: random)
    assert waits(backoff, 7) == pytest.approx(expected, rel=1e-12)


def test_every_wait_is_within_half_and_one_and_a_half_of_the_base() -> None:
    draws = iter([0.0, 0.999, 0.25, 0.75, 0.0, 0.999])
    backoff = Backoff(random_=lambda: next(draws))
    for base, wait in zip([1, 2, 4, 8, 16, 30], waits(backoff, 6), strict=True):
        assert 0.5 * base <= wait < 1.5 * base


def test_connection_open_for_the_stable_time_resets_the_wait() -> None:
    backoff = Backoff(random_=lambda: 0.5)
    assert waits(backoff, 4) == [1, 2, 4, 8]
    backoff.connected(100.0)
    assert backoff.disconnected(160.0) == 1
    assert backoff.disconnected(161.0) == 2


def test_longer_connection_also_resets() -> None:
    backoff = Backoff(random_=lambda: 0.5)
    waits(backoff, 10)
    backoff.connected(0.0)
    assert backoff.disconnected(3600.0) == 1


def test_shorter_connection_does_not_reset() -> None:
    backoff = Backoff(random_=lambda: 0.5)
    assert waits(backoff, 3) == [1, 2, 4]
    backoff.connected(100.0)
    assert backoff.disconnected(159.999) == 8
    assert backoff.disconnected(500.0) == 16  # not connected since: no reset however late


def test_settings_are_configurable() -> None:
    backoff = Backoff(first_s=0.1, cap_s=0.5, stable_s=5.0, random_=lambda: 0.5)
    assert waits(backoff, 5) == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    backoff.connected(0.0)
    assert backoff.disconnected(5.0) == pytest.approx(0.1)


def test_defaults() -> None:
    backoff = Backoff()
    assert (backoff.first_s, backoff.cap_s, backoff.stable_s) == (1.0, 30.0, 60.0)
    for base, wait in zip([1, 2, 4, 8, 16, 30, 30], waits(backoff, 7), strict=True):
        assert 0.5 * base <= wait <= 1.5 * base
