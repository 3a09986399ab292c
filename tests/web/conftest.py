"""Fixtures the web tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer, redis_server_or_skip


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of the test's own on a free loopback port (skips where none is installed)."""
    server = redis_server_or_skip()
    yield server
    server.close()
