"""The client's ``sessions()``, ``revoke_session()`` and ``revoke_other_sessions()`` against a
real tokenguard app in process (WSGI for :class:`Client`, ASGI for :class:`AsyncClient`), in
each login mode; and what they do with answers that are not a list of sessions."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from tests.helpers.auth import (
    EMAIL,
    FAST,
    PASSWORD,
    SECRET,
    make_user,
    plain_asgi_app,
    plain_wsgi_app,
)
from tokenguard import TokenGuard, TokenGuardMiddleware, TokenGuardWSGI
from tokenguard.client import (
    AsyncClient,
    Client,
    Forbidden,
    InvalidCredentials,
    MemoryStorage,
    UnexpectedResponse,
)
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

BASE = "http://testserver"


def guard(flavour: str) -> TokenGuard:
    users = MemoryUserStore()
    users.create(make_user())
    return TokenGuard(
        users=users, sessions=MemorySessionStore(), passwords=FAST, secret=SECRET,
        login_stall_ms=0, flavour=flavour,
    )  # fmt: skip


def sync_client(core: TokenGuard, mode: str = "json") -> Client:
    http = httpx.Client(transport=httpx.WSGITransport(app=TokenGuardWSGI(plain_wsgi_app, guard=core)))
    return Client(BASE, http=http, mode=mode, storage=MemoryStorage())  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["json", "cookie", "session"])
def test_list_end_one_end_the_others(mode: str) -> None:
    core = guard("sync")
    with sync_client(core, mode) as me, sync_client(core) as phone, sync_client(core) as laptop:
        for client in (me, phone, laptop):
            client.login(EMAIL, PASSWORD)
        listed = me.sessions()
        assert len(listed) == 3 and sum(s["current"] for s in listed) == 1
        assert set(listed[0]) == {
            "id", "created_on", "last_used_on", "expires", "ip", "user_agent", "origin", "current"
        }
        phone_id = next(s["id"] for s in phone.sessions() if s["current"])
        me.revoke_session(phone_id)
        with pytest.raises(InvalidCredentials):
            phone.sessions()  # its access token is refused at once
        with pytest.raises(Forbidden):
            me.revoke_session(phone_id)
        assert len(me.sessions()) == 2
        me.revoke_other_sessions()
        with pytest.raises(InvalidCredentials):
            laptop.sessions()
        (only,) = me.sessions()
        assert only["current"] is True
        # The client's own session survives, refresh included.
        me.refresh()
        assert [s["current"] for s in me.sessions()] == [True]


def test_odd_ids_are_escaped_into_one_path_segment() -> None:
    core = guard("sync")
    with sync_client(core) as me:
        me.login(EMAIL, PASSWORD)
        for odd in ("?x=1", "#", "é", " ", "%2F", "...", "\x00"):
            with pytest.raises(Forbidden):
                me.revoke_session(odd)
        # With a "/" the server's decoded path is no session route: the app behind the
        # guard answers (200 here), which is no session's end.
        for odd in ("a/b", "../logout"):
            with pytest.raises(UnexpectedResponse, match="HTTP 200 where"):
                me.revoke_session(odd)
        with pytest.raises(ValueError, match="non-empty"):
            me.revoke_session("")
        for dots in (".", ".."):  # a URL's dot segments would name another path
            with pytest.raises(ValueError, match="cannot be a session id"):
                me.revoke_session(dots)
        assert len(me.sessions()) == 1


def test_logged_out_is_invalid_credentials() -> None:
    with sync_client(guard("sync")) as me:
        with pytest.raises(InvalidCredentials):
            me.sessions()
        with pytest.raises(InvalidCredentials):
            me.revoke_other_sessions()


@pytest.mark.parametrize(
    "body",
    [b"[]", b'{"data": {}}', b'{"data": [1]}', b"not json", b'{"nodata": []}'],
)
def test_an_answer_that_is_not_a_list_of_sessions_is_unexpected(body: bytes) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    http = httpx.Client(transport=httpx.MockTransport(handle))
    with Client(BASE, http=http) as api, pytest.raises(UnexpectedResponse):
        api.sessions()


def test_the_async_client_does_the_same() -> None:
    core = guard("async")
    app = TokenGuardMiddleware(plain_asgi_app, guard=core)

    def client() -> AsyncClient:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))  # type: ignore[arg-type]
        return AsyncClient(BASE, http=http, storage=MemoryStorage())

    async def main() -> Any:
        async with client() as me, client() as other:
            await me.login(EMAIL, PASSWORD)
            await other.login(EMAIL, PASSWORD)
            listed = await me.sessions()
            assert len(listed) == 2
            theirs = next(s["id"] for s in listed if not s["current"])
            await me.revoke_session(theirs)
            with pytest.raises(InvalidCredentials):
                await other.sessions()
            await other.login(EMAIL, PASSWORD)
            await me.revoke_other_sessions()
            with pytest.raises(InvalidCredentials):
                await other.sessions()
            return await me.sessions()

    (only,) = anyio.run(main)
    assert only["current"] is True
