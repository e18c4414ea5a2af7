"""The warning at start when the Redis session store's server keeps nothing across a restart,
over private redis-servers started with and without persistence, and with CONFIG disabled."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.auth import SECRET
from tests.helpers.redis_server import RedisServer, free_port, redis_server_binary
from tokenguard import TokenGuard
from tokenguard.stores.redis_persistence import warn_without_persistence

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not installed"),
]

LOGGER = "tokenguard.stores.redis"
EMPTY = ("--save", "", "--appendonly", "no")
Starter = Callable[..., RedisServer]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Starter]:
    servers: list[RedisServer] = []

    def starter(*args: str, persistent: bool = False) -> RedisServer:
        directory = tmp_path / str(len(servers))
        directory.mkdir()
        server = RedisServer(directory, persistent=persistent, args=args)
        server.start()
        servers.append(server)
        return server

    yield starter
    for server in servers:
        server.stop()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING
    ]


def test_no_persistence_warns_once_at_start(
    start: Starter, caplog: pytest.LogCaptureFixture
) -> None:
    server = start(*EMPTY)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        with TokenGuard(secret=SECRET, redis_url=server.url):
            pass
        with TokenGuard(secret=SECRET, redis_url=server.url, flavour="async"):
            pass
    (message,) = _warnings(caplog)
    assert f"127.0.0.1:{server.port}" in message
    assert "logs every user out" in message and "appendonly yes" in message


@pytest.mark.parametrize(
    "args, persistent",
    [
        ((), True),  # an AOF (appendonly yes)
        (("--save", "900 1", "--appendonly", "no"), False),  # RDB snapshots only
    ],
    ids=["aof", "rdb"],
)
def test_persistence_says_nothing(
    start: Starter, caplog: pytest.LogCaptureFixture, args: tuple[str, ...], persistent: bool
) -> None:
    server = start(*args, persistent=persistent)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert warn_without_persistence(server.url) is False
    assert _warnings(caplog) == []


def test_config_disabled_is_tolerated(start: Starter, caplog: pytest.LogCaptureFixture) -> None:
    # As on managed services: CONFIG renamed away, so nothing can be known.
    server = start(*EMPTY, "--rename-command", "CONFIG", "")
    with (
        caplog.at_level(logging.DEBUG, logger=LOGGER),
        TokenGuard(secret=SECRET, redis_url=server.url) as guard,
    ):
        assert guard.sessions is not None
    assert _warnings(caplog) == []
    assert any(
        r.levelno == logging.DEBUG and "not checked" in r.getMessage() for r in caplog.records
    )


def test_unreachable_at_start_still_starts_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"  # nothing listens there
    with caplog.at_level(logging.DEBUG, logger=LOGGER), TokenGuard(secret=SECRET, redis_url=url):
        pass
    assert _warnings(caplog) == [
        f"the Redis server holding the sessions (127.0.0.1:{port}) does not answer at start "
        "(ConnectionError): requests that need it answer 503 until it does"
    ]
