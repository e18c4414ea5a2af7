"""Random operation sequences: SQLite, Redis and PostgreSQL (sync and async) against the
memory model."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tokenguard.stores.base import SessionRecord, refresh_token_key
from tokenguard.stores.memory import MemorySessionStore
from tokenguard.stores.pg_schema import migrate

from .conftest import new_token, open_session_store, real_now_ms

MINUTE = 60_000
USERS = ["ann", "ben", "cat"]
_text = st.none() | st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


def make_machine(
    redis_url: str | None,
    backends: tuple[str, ...] = ("sqlite", "redis", "redis-async"),
    extra: Callable[[], Any] | None = None,
    pg: Any = None,
) -> type[RuleBasedStateMachine]:
    """``pg``: the PostgreSQL test server, when ``backends`` name ``pg``/``pg-async`` (each
    gets a fresh migrated schema per example)."""
    class SessionModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.stack = ExitStack()
            directory = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
            self.model = MemorySessionStore()
            self.backends: dict[str, Any] = {}
            if extra is not None:
                self.backends["extra"] = extra()
            for name in backends:
                prefix = f"tg-test:{uuid.uuid4().hex}:"  # one key space per backend
                self.stack.callback(self._drop_keys, prefix)
                conninfo = None
                if name.startswith("pg"):
                    conninfo = pg.fresh_schema()
                    self.stack.callback(pg.drop_schema, conninfo)  # after the store closes
                    migrate(conninfo)
                self.backends[name] = open_session_store(
                    name, self.stack, directory, redis_url, prefix, conninfo
                )
            # Records expire in the future of the real clock (Redis expires keys by it); the
            # test clock starts now and moves forward in big steps.
            self.now = real_now_ms()
            self.hashes: list[str] = []
            self.next_of: dict[str, str] = {}

        def _drop_keys(self, prefix: str) -> None:
            import redis

            if redis_url is None:
                return
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)
            client.close()

        def teardown(self) -> None:
            self.stack.close()

        def each(self, method: str, *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
            expected = getattr(self.model, method)(*args, **kwargs)
            got = {name: getattr(b, method)(*args, **kwargs) for name, b in self.backends.items()}
            return expected, got

        def _family_expired(self, token_hash: str) -> bool:
            """Whether every record of ``token_hash``'s family has expired (so a backend may
            have purged it: families are purged whole, never record by record)."""
            rec = self.model._records.get(token_hash)
            if rec is None:
                return False
            members = [r for r in self.model._records.values() if r.family == rec.family]
            return all(r.expires_at_ms < self.now for r in members)

        @rule(
            user=st.sampled_from(USERS),
            ttl=st.integers(10 * MINUTE, 120 * MINUTE),
            ip=_text,
            ua=_text,
        )
        def login(self, user: str, ttl: int, ip: str | None, ua: str | None) -> None:
            key = refresh_token_key(new_token())
            rec = SessionRecord(key, key[:22], user, self.now + ttl, self.now, ip=ip, user_agent=ua)
            _, got = self.each("create", rec)
            assert all(v is None for v in got.values())
            self.hashes.append(key)

        @rule(step=st.sampled_from([0, 1, 999, 1000, 5 * MINUTE, 30 * MINUTE]))
        def tick(self, step: int) -> None:
            self.now += step

        @precondition(lambda self: bool(self.hashes))
        @rule(
            data=st.data(),
            grace=st.sampled_from([0, 1000, 10_000]),
            ttl=st.integers(10 * MINUTE, 120 * MINUTE),
            same_successor=st.booleans(),
        )
        def refresh(self, data: Any, grace: int, ttl: int, same_successor: bool) -> None:
            old = data.draw(st.sampled_from(self.hashes))
            family = old[:22]
            if same_successor and old in self.next_of:
                new_hash = self.next_of[old]  # a repeated / concurrent refresh
            else:
                new_hash = refresh_token_key(new_token(family))
            known = self.model._records.get(old)
            # the core refreshes a session for its own user; the family field is the store's
            user = known.user_id if known is not None else "ann"
            new = SessionRecord(new_hash, "whatever", user, self.now + ttl, self.now)
            expected, got = self.each("rotate", old, new, now_ms=self.now, grace_ms=grace)
            for name, outcome in got.items():
                assert outcome == expected, name
            if expected.status == "rotated":
                self.next_of[old] = new_hash
                self.hashes.append(new_hash)

        @precondition(lambda self: bool(self.hashes))
        @rule(data=st.data())
        def logout(self, data: Any) -> None:
            key = data.draw(st.sampled_from(self.hashes))
            purgeable = self._family_expired(key)
            expected, got = self.each("revoke", key)
            for name, rec in got.items():
                # SQLite may already have purged a family whose records all expired; any
                # other record, expired or not, must come back exactly (and its family go).
                assert rec == expected or (purgeable and rec is None), name

        @precondition(lambda self: bool(self.hashes))
        @rule(user=st.sampled_from(USERS), data=st.data(), keep=st.booleans())
        def logout_everywhere(self, user: str, data: Any, keep: bool) -> None:
            except_family = data.draw(st.sampled_from(self.hashes))[:22] if keep else None
            families = {
                r.family
                for r in self.model._records.values()
                if r.user_id == user and r.family != except_family
            }
            live = {
                r.family
                for r in self.model._records.values()
                if r.user_id == user and r.family != except_family and r.expires_at_ms >= self.now
            }
            expected, got = self.each("revoke_user", user, except_family=except_family)
            assert expected == len(families)
            for name, count in got.items():
                assert len(live) <= count <= len(families), name

        @invariant()
        def every_token_reads_the_same(self) -> None:
            for key in self.hashes[-8:]:
                expected, got = self.each("get", key, self.now)
                for name, rec in got.items():
                    assert rec == expected, name

    return SessionModel


@pytest.mark.redis
def test_backends_follow_the_memory_model(redis_url: str) -> None:
    machine = make_machine(redis_url)
    machine.TestCase.settings = settings(
        max_examples=60,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine.TestCase().runTest()


@pytest.mark.pg
def test_postgres_follows_the_memory_model(pg_server: Any) -> None:
    machine = make_machine(None, backends=("pg", "pg-async"), pg=pg_server)
    machine.TestCase.settings = settings(
        max_examples=40,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine.TestCase().runTest()


def test_the_model_test_can_fail() -> None:
    """A backend that forgets rotations (a replayable old token) is caught."""

    class Forgetful(MemorySessionStore):
        def rotate(self, token_hash: str, new: SessionRecord, *, now_ms: int, grace_ms: int) -> Any:
            outcome = super().rotate(token_hash, new, now_ms=now_ms, grace_ms=grace_ms)
            if outcome.status == "rotated":
                old = self._records[token_hash]
                self._records[token_hash] = replace(old, next_hash=None, live_until_ms=None)
            return outcome

    machine = make_machine(None, backends=(), extra=Forgetful)
    machine.TestCase.settings = settings(
        max_examples=200,
        stateful_step_count=20,
        deadline=None,
        database=None,
        phases=[Phase.generate],
    )
    with pytest.raises(AssertionError):
        machine.TestCase().runTest()
