from __future__ import annotations

import os

# Tests never pick up a developer's real configuration.
for _name in list(os.environ):
    if _name in {"SECRET", "REDIS", "PUBLIC_URL"} or _name.startswith(
        ("DB_", "TOKENGUARD_", "ACCESS_TOKEN_", "REFRESH_TOKEN_", "SESSION_COOKIE_", "SESSION_REFRESH_")
    ):
        del os.environ[_name]


# --- Redis fixtures (real servers, unique prefixes) -------------------------------------------

import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.helpers.pg_server import own_pg, pg_conninfo, pg_empty, pg_server  # noqa: E402, F401
from tests.helpers.redis_server import RedisServer, redis_server_binary  # noqa: E402


def _skip_or_fail(reason: str) -> None:
    # On a developer's laptop a missing Redis skips; in CI (which installs one) it is a failure.
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


_TEST_REDIS_URL = os.environ.get("TG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared test Redis; tests using it must also use ``redis_prefix``."""
    import redis

    client = redis.Redis.from_url(_TEST_REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        _skip_or_fail(f"no Redis at {_TEST_REDIS_URL}")
    finally:
        client.close()
    return _TEST_REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; its keys are deleted afterwards."""
    import redis

    prefix = f"tg-test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private, running ``redis-server`` on a free port, stopped (by PID) afterwards."""
    if redis_server_binary() is None:
        _skip_or_fail("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- Mutation testing (scripts/mutation.py sets TG_MUTATION_RUN) ------------------------------
# Each mutant runs every test that reaches the mutated function, stopping at the first failure.
# The fixed tests (a request, its exact answer) are what must kill a mutant; hypothesis's
# hundreds of examples only make each run slow, and random ones would make a verdict depend on
# luck. So in a mutation run: fixed tests first, fastest first (the durations mutmut recorded
# in its first pass, when this process is one of its workers), property tests last, each with
# a few derandomized examples and no shrinking (a failure is all that counts).
_MUTATION_RUN = bool(os.environ.get("TG_MUTATION_RUN"))
_MUTATION_EXAMPLES = 10


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not _MUTATION_RUN:
        return
    from hypothesis import Phase, settings

    def is_property(item: pytest.Item) -> bool:
        return getattr(getattr(item, "obj", None), "is_hypothesis_test", False) is True

    for item in items:
        if is_property(item):
            # hypothesis reads this attribute (what @settings set) each time the test is called.
            test = getattr(item.obj, "__func__", item.obj)  # type: ignore[attr-defined]
            current = test._hypothesis_internal_use_settings
            test._hypothesis_internal_use_settings = settings(
                current,
                max_examples=min(current.max_examples, _MUTATION_EXAMPLES),
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
            )
    durations: dict[str, float] = {}
    try:
        from mutmut.state import state  # a worker forked from mutmut: its recorded durations
    except ImportError:
        pass
    else:
        durations = dict(state().duration_by_test)
    items.sort(key=lambda item: (is_property(item), durations.get(item.nodeid, 0.0)))
