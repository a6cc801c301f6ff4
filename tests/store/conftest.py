"""Fixtures of the store tests. ``store`` here is a ``RedisStore`` on the session's Redis
(under a key prefix of the test's own); test_contract.py and test_sqlite.py define their
own ``store``, which takes precedence in those modules."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from browsergrid.store import RedisStore


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    opened = RedisStore(redis_url)
    await opened.open()
    yield opened
    await opened.close()
