"""Client-controlled strings (User-Agent, origin, IP) survive Redis and its Lua JSON intact."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenguard.stores.redis import RedisSessionStore

from .conftest import new_token, real_now_ms, record

pytestmark = pytest.mark.redis
HOUR = 3_600_000

# Anything a header can carry once decoded, and more: controls, quotes, backslashes,
# U+2028, astral characters. Lone surrogates are not text and are refused (see layout tests).
header_text = st.none() | st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@pytest.fixture(scope="module")
def store(redis_url: str) -> Iterator[RedisSessionStore]:
    import uuid

    import redis

    prefix = f"tg-test:{uuid.uuid4().hex}:"
    s = RedisSessionStore.from_url(redis_url, prefix=prefix)
    yield s
    s.close()
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@settings(max_examples=150, deadline=None)
@given(
    ua=header_text,
    origin=header_text,
    ip=header_text,
    user=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30),
)
def test_strings_round_trip_through_the_rotation_script(
    store: RedisSessionStore, ua: str | None, origin: str | None, ip: str | None, user: str
) -> None:
    now = real_now_ms()
    old = record(
        new_token(),
        user_id=user,
        expires_at_ms=now + HOUR,
        created_at_ms=now,
        ip=ip,
        user_agent=ua,
        origin=origin,
    )
    store.create(old)
    assert store.get(old.token_hash, now) == old
    nxt = record(
        new_token(old.family),
        user_id=user,
        expires_at_ms=now + HOUR,
        user_agent=ua,
        origin=origin,
        ip=ip,
    )
    assert store.rotate(old.token_hash, nxt, now_ms=now, grace_ms=5000).status == "rotated"
    # the old record was decoded and re-encoded by Lua's cjson: still the same strings
    assert store.get(old.token_hash, now + 1) == replace(
        old, next_hash=nxt.token_hash, live_until_ms=now + 5000
    )
    # so was the successor on the grace path
    later = replace(nxt, expires_at_ms=now + 2 * HOUR)
    outcome = store.rotate(old.token_hash, later, now_ms=now + 1, grace_ms=5000)
    assert outcome.status == "grace"
    assert outcome.record == later
    assert store.get(nxt.token_hash, now + 1) == later
    assert store.revoke(old.token_hash) == replace(
        old, next_hash=nxt.token_hash, live_until_ms=now + 5000
    )
