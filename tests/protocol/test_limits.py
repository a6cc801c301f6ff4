"""``RateLimit`` and ``Connections``: time passed in, exact counts."""

from __future__ import annotations

from browsergrid.protocol import Connections, RateLimit


def test_bursts_then_the_average_rate() -> None:
    limit = RateLimit(rate=10, burst=20, now=0.0)
    assert sum(limit.allow(0.0) for _ in range(30)) == 20  # the burst
    assert not limit.allow(0.05)  # half a token came back
    assert limit.allow(0.1)  # one whole token
    assert sum(limit.allow(10.0) for _ in range(30)) == 20  # refilled, never above the burst


def test_a_cost_takes_that_many_tokens_or_none() -> None:
    limit = RateLimit(rate=10, burst=20, now=0.0)
    assert limit.allow(0.0, cost=15)
    assert not limit.allow(0.0, cost=6)  # 5 left: nothing is taken
    assert limit.allow(0.0, cost=5)
    assert not limit.allow(0.0)
    assert limit.allow(0.5, cost=5)  # 5 came back
    assert not limit.allow(100.0, cost=21)  # more than a burst never passes
    assert limit.allow(100.0, cost=20)


def test_granted_messages_pay_first_item_by_item() -> None:
    limit = RateLimit(rate=10, burst=20, now=0.0)
    limit.grant(3)
    assert limit.allow(0.0, cost=5)  # 3 owed, 2 tokens
    assert limit.owed == 0 and limit.tokens == 18
    limit.grant(4)
    assert limit.allow(0.0, cost=4)  # owed alone: the bucket is not touched
    assert limit.owed == 0 and limit.tokens == 18
    limit.grant(2)
    assert not limit.allow(0.0, cost=21)  # refused: the owed are kept too
    assert limit.owed == 2 and limit.tokens == 18
    assert limit.allow(0.0, cost=20)


def test_tasks_sent_are_owed_frames_beyond_the_rate() -> None:
    limit = RateLimit(rate=10, burst=20, now=0.0)
    assert sum(limit.allow(0.0) for _ in range(20)) == 20
    limit.grant(100)  # it was sent 100 tasks: each result may come in a frame of its own
    assert sum(limit.allow(0.0) for _ in range(150)) == 100
    limit.grant(5)
    assert sum(limit.allow(100.0) for _ in range(50)) == 5 + 20  # time refills to the burst


def test_connections_are_counted_per_address() -> None:
    connections = Connections(limit=2)
    assert connections.take("10.0.0.1") and connections.take("10.0.0.1")
    assert not connections.take("10.0.0.1")
    assert connections.take("10.0.0.2")
    connections.give_back("10.0.0.1")
    assert connections.take("10.0.0.1")
    connections.give_back("10.0.0.1")
    connections.give_back("10.0.0.1")
    assert "10.0.0.1" not in connections.open
    unlimited = Connections(limit=0)
    assert all(unlimited.take("10.0.0.1") for _ in range(1000))
