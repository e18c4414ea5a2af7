from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scale.redis_topologies import RedisCluster, RedisSentinel


def _need_redis() -> None:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server and redis-cli are needed")
        pytest.skip("redis-server and redis-cli are not installed")


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A private three-master Redis Cluster on 127.0.0.1, for this test module."""
    _need_redis()
    cluster = RedisCluster(Path(tmp_path_factory.mktemp("cluster")))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_sentinel(tmp_path: Path) -> Iterator[RedisSentinel]:
    """A private master + replica + Sentinel on 127.0.0.1."""
    _need_redis()
    sentinel = RedisSentinel(tmp_path)
    try:
        sentinel.start()
        yield sentinel
    finally:
        sentinel.stop()
