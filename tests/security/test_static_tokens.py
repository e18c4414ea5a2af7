"""Static tokens: stored as SHA-256 digests only, compared in constant time."""

from __future__ import annotations

import hmac
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.auth import USER_ID, make_user
from tests.security.harness import INVALID_CREDENTIALS, make_shell
from tokenguard.jose.tokens import hash_token
from tokenguard.stores.base import User
from tokenguard.stores.memory import MemoryUserStore
from tokenguard.stores.sqlite import SQLiteUserStore

TOKEN = "tg-static-Qm4Wn8Zr2Xv6Bt1Ys5Lk9Jh3Gf7Dc0Ea"

pytestmark = pytest.mark.parametrize("kind", ["asgi", "wsgi"])


def _users_with_only_the_hash() -> MemoryUserStore:
    users = MemoryUserStore()
    users.create(make_user(token_hash=hash_token(TOKEN)))
    return users


def test_a_store_holding_only_hashes_authenticates(kind: str) -> None:
    users = _users_with_only_the_hash()
    # Nothing the store holds is the token itself.
    for user in users.list_users():
        assert TOKEN not in repr(vars_of(user))
    shell = make_shell(kind, users=users)
    reply = shell.request("GET", "/items", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (reply.status, reply.body) == (200, f"app {USER_ID} static".encode())


def vars_of(user: User) -> dict[str, Any]:
    return {name: getattr(user, name) for name in user.__dataclass_fields__}


def test_sqlite_file_never_contains_the_token(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    store = SQLiteUserStore(path)
    store.create(make_user(token_hash=hash_token(TOKEN)))
    shell = make_shell(kind, users=store)
    assert shell.request("GET", "/items", headers={"Authorization": f"Bearer {TOKEN}"}).status == 200
    store.close()
    raw = path.read_bytes()
    assert TOKEN.encode() not in raw
    assert hash_token(TOKEN).encode() in raw
    with sqlite3.connect(path) as conn:
        rows = conn.execute("select * from sqlite_master").fetchall()
    assert rows  # the schema is there; the token is not


@pytest.mark.parametrize(
    "guess",
    [TOKEN[:-1], TOKEN + "x", TOKEN.upper(), TOKEN[:-1] + chr(ord(TOKEN[-1]) + 1), hash_token(TOKEN), TOKEN[1:]],
)
def test_near_misses_are_refused(kind: str, guess: str) -> None:
    shell = make_shell(kind, users=_users_with_only_the_hash())
    reply = shell.request("GET", "/items", headers={"Authorization": f"Bearer {guess}"})
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)


class LooseStore(MemoryUserStore):
    """Answers every lookup with the one user: the worst possible index."""

    def get_by_token_hash(self, token_hash: str) -> User | None:
        users = self.list_users()
        return users[0] if users else None


def test_the_guard_compares_the_full_digest_in_constant_time(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import tokenguard.guard.decide

    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokenguard.guard.decide.hmac, "compare_digest", spy)
    users = LooseStore()
    users.create(make_user(token_hash=hash_token(TOKEN)))
    shell = make_shell(kind, users=users)
    assert shell.request("GET", "/items", headers={"Authorization": f"Bearer {TOKEN}"}).status == 200
    assert calls == [(hash_token(TOKEN), hash_token(TOKEN))]
    # The store "finds" the user for any digest; the comparison is what refuses the guess.
    reply = shell.request("GET", "/items", headers={"Authorization": "Bearer guess"})
    assert (reply.status, reply.body) == (401, INVALID_CREDENTIALS)
    assert calls[-1] == (hash_token(TOKEN), hash_token("guess"))


_TOKEN_CHARS = st.characters(min_codepoint=33, max_codepoint=126)


@given(guess=st.text(_TOKEN_CHARS, min_size=1, max_size=60).filter(lambda t: t != TOKEN))
@settings(max_examples=100, deadline=None)
def test_a_store_that_answers_wrongly_never_lets_a_guess_in(kind: str, guess: str) -> None:
    users = LooseStore()
    users.create(make_user(token_hash=hash_token(TOKEN)))
    shell = make_shell(kind, users=users)
    reply = shell.request("GET", "/items", headers={"Authorization": f"Bearer {guess}"})
    assert reply.status in (400, 401, 403)
    assert not reply.body.startswith(b"app ")
