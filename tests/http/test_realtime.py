"""The realtime state machine, event by event (no sockets): spec §14 and directus-observed.md
"Realtime (WebSocket) details"."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.auth import EMAIL, FAST, NOW, PASSWORD, ROLE, SECRET, USER_ID, Clock, make_user
from tokenguard.app import TokenGuard
from tokenguard.auth.service import ClientInfo
from tokenguard.config import token_policy
from tokenguard.errors import AuthError
from tokenguard.flow import run_sync
from tokenguard.http.realtime import (
    Accept,
    CancelTimer,
    Close,
    Connection,
    Deliver,
    Realtime,
    Reject,
    SendJSON,
    SetPrincipal,
    SetTimer,
    StartApp,
    parse_message,
)
from tokenguard.jose.tokens import issue_access_token
from tokenguard.principal import Principal
from tokenguard.stores.base import refresh_token_key
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

HANDSHAKE_FAILED = {
    "type": "auth",
    "status": "error",
    "error": {"code": "AUTH_FAILED", "message": "Authentication handshake failed."},
}
STATIC = "static-token-for-realtime-tests-0123456789"
ALL_TIMERS = [CancelTimer(n) for n in ("handshake", "expiry", "reauth", "heartbeat")]


class World:
    def __init__(self, mode: str = "handshake", **overrides: Any) -> None:
        self.clock = Clock()
        self.users = MemoryUserStore()
        self.sessions = MemorySessionStore()
        self.user = self.users.create(make_user())
        self.users.update(self.user.id, token_hash=_hash(STATIC))
        overrides.setdefault("secret", SECRET)
        self.core = TokenGuard(
            users=self.users,
            sessions=self.sessions,
            clock=self.clock,
            passwords=FAST,
            login_stall_ms=0,
            websockets_enabled=True,
            websockets_rest_auth=mode,
            **overrides,
        )
        self.realtime = Realtime(self.core.settings, self.core.guard, self.core.auth)

    def conn(self) -> Connection:
        return self.realtime.connection(ClientInfo("198.51.100.4", "pytest", None))

    def token(self, ttl_s: float = 900, **changes: Any) -> str:
        values: dict[str, Any] = {
            "user_id": USER_ID,
            "role": ROLE,
            "app_access": True,
            "admin_access": False,
            "ttl_ms": int(ttl_s * 1000),
            "now": self.clock(),
        }
        values.update(changes)
        return issue_access_token(token_policy(self.core.settings), **values)


def _hash(token: str) -> str:
    from tokenguard.jose.tokens import hash_token

    return hash_token(token)


def drive(answer: Any) -> list[Any]:
    return answer if isinstance(answer, list) else run_sync(answer)


def sent(actions: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(a.text) for a in actions if isinstance(a, SendJSON)]


def frame(**fields: Any) -> str:
    return json.dumps({"type": "auth", **fields})


def opened(world: World, conn: Connection, **fields: Any) -> list[Any]:
    drive(conn.connect(None, "", None))
    return drive(conn.message(frame(**fields)))


# -- handshake -----------------------------------------------------------------------------


def test_handshake_connect_accepts_and_arms_the_timeout() -> None:
    world = World()
    assert drive(world.conn().connect(None, "", None)) == [
        Accept(),
        SetTimer("handshake", 10.0),
        SetTimer("heartbeat", 30.0),
    ]


def test_handshake_with_an_access_token() -> None:
    world = World()
    conn = world.conn()
    actions = opened(world, conn, access_token=world.token(), uid="u1")
    assert sent(actions) == [{"type": "auth", "status": "ok", "uid": "u1"}]
    start = [a for a in actions if isinstance(a, StartApp)]
    assert len(start) == 1 and start[0].principal.user == USER_ID
    assert start[0].principal.via == "jwt"
    assert actions[0] == CancelTimer("handshake")
    assert SetTimer("expiry", 900.0) in actions
    assert conn.state == "open"


def test_handshake_with_a_static_token() -> None:
    world = World()
    conn = world.conn()
    actions = opened(world, conn, access_token=STATIC)
    assert sent(actions) == [{"type": "auth", "status": "ok"}]
    assert [a.principal.via for a in actions if isinstance(a, StartApp)] == ["static"]
    assert CancelTimer("expiry") in actions  # a static token never expires


def test_handshake_with_email_and_password_returns_a_refresh_token() -> None:
    world = World()
    conn = world.conn()
    actions = opened(world, conn, email=EMAIL, password=PASSWORD, uid=7)
    [reply] = sent(actions)
    assert list(reply) == ["type", "status", "refresh_token", "uid"]
    assert reply["uid"] == 7 and reply["status"] == "ok"
    assert world.sessions.get(refresh_token_key(reply["refresh_token"]), int(NOW * 1000))


def test_handshake_with_a_refresh_token_rotates_it() -> None:
    world = World()
    first = sent(opened(world, world.conn(), email=EMAIL, password=PASSWORD))[0]["refresh_token"]
    reply = sent(opened(world, world.conn(), refresh_token=first))[0]
    assert reply["status"] == "ok" and reply["refresh_token"] != first
    # The old one is spent: using it again fails (and, being reuse, revokes the family).
    assert sent(opened(world, world.conn(), refresh_token=first)) == [HANDSHAKE_FAILED]


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        "",
        "[]",
        '{"type":"ping"}',
        '{"type":"subscribe","collection":"x"}',
        '{"type":"auth"}',
        '{"type":"auth","access_token":""}',
        '{"type":"auth","access_token":"garbage"}',
        '{"type":"auth","access_token":5}',
        '{"type":"auth","email":"ada@example.com"}',
        '{"type":"auth","email":"ada@example.com","password":"wrong"}',
        '{"type":"auth","email":"invalidEmail","password":"x"}',
        '{"type":"auth","refresh_token":"x"}',
        '{"type":"auth","access_token":"a","uid":{"x":1}}',
        '{"type":"auth","access_token":"a","uid":true}',
        b"\xff\xfe",
    ],
)
def test_handshake_failures_close_with_auth_failed(data: Any) -> None:
    world = World()
    conn = world.conn()
    drive(conn.connect(None, "", None))
    actions = drive(conn.message(data))
    assert actions == [
        SendJSON(json.dumps(HANDSHAKE_FAILED, separators=(",", ":"))),
        Close(1000),
        *ALL_TIMERS,
    ]
    assert conn.state == "closed"
    assert drive(conn.message(frame(access_token=world.token()))) == []


def test_handshake_expired_token_is_auth_failed_not_token_expired() -> None:
    world = World()
    token = world.token(ttl_s=10)
    world.clock.advance(3600)
    assert sent(opened(world, world.conn(), access_token=token)) == [HANDSHAKE_FAILED]


def test_handshake_timeout() -> None:
    world = World()
    conn = world.conn()
    drive(conn.connect(None, "", None))
    actions = conn.timer("handshake")
    assert sent(actions) == [HANDSHAKE_FAILED] and Close(1000) in actions
    assert conn.timer("handshake") == []


def test_the_handshake_timer_after_success_does_nothing() -> None:
    world = World()
    conn = world.conn()
    opened(world, conn, access_token=world.token())
    assert conn.timer("handshake") == []


def test_a_suspended_user_cannot_log_in_over_the_socket() -> None:
    world = World()
    world.users.update(USER_ID, status="suspended")
    assert sent(opened(world, world.conn(), email=EMAIL, password=PASSWORD)) == [HANDSHAKE_FAILED]


# -- token at the upgrade --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["public", "handshake", "strict"])
def test_query_token_opens_without_an_auth_message(mode: str) -> None:
    world = World(mode)
    conn = world.conn()
    actions = drive(conn.connect(None, f"access_token={world.token()}", None))
    assert not sent(actions) and Accept() not in actions
    [start] = [a for a in actions if isinstance(a, StartApp)]
    assert start.principal.user == USER_ID


@pytest.mark.parametrize("mode", ["public", "handshake", "strict"])
def test_header_and_static_query_token(mode: str) -> None:
    world = World(mode)
    actions = drive(world.conn().connect(f"Bearer {world.token()}", "", None))
    assert [a.principal.via for a in actions if isinstance(a, StartApp)] == ["jwt"]
    actions = drive(world.conn().connect(None, f"access_token={STATIC}", None))
    assert [a.principal.via for a in actions if isinstance(a, StartApp)] == ["static"]


@pytest.mark.parametrize("mode", ["public", "handshake", "strict"])
@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("access_token=garbage", "INVALID_CREDENTIALS"),
        ("access_token=a&access_token=b", "INVALID_PAYLOAD"),
    ],
)
def test_bad_upgrade_token_is_rejected(mode: str, query: str, code: str) -> None:
    world = World(mode)
    actions = drive(world.conn().connect(None, query, None))
    assert len(actions) == 1 and isinstance(actions[0], Reject)
    assert actions[0].status == 401 and actions[0].error.code == code


def test_expired_and_forged_upgrade_tokens_are_rejected() -> None:
    world = World()
    expired = world.token(ttl_s=1)
    world.clock.advance(60)
    [reject] = drive(world.conn().connect(None, f"access_token={expired}", None))
    assert isinstance(reject, Reject) and reject.error.code == "TOKEN_EXPIRED"
    other = World(secret="tg-other-Zx8Cv7Bn6Mq5Wr4Et3Yu2Io1Pa0SdFgHjKl")
    [reject] = drive(world.conn().connect(None, f"access_token={other.token()}", None))
    assert isinstance(reject, Reject) and reject.status == 401
    assert reject.error.code == "INVALID_TOKEN"


def test_a_token_for_no_user_is_rejected_at_upgrade() -> None:
    world = World()
    token = world.token(user_id=None)
    [reject] = drive(world.conn().connect(None, f"access_token={token}", None))
    assert isinstance(reject, Reject) and reject.error.code == "INVALID_CREDENTIALS"


def test_strict_without_a_token_is_rejected() -> None:
    world = World("strict")
    [reject] = drive(world.conn().connect(None, "", None))
    assert isinstance(reject, Reject)
    assert reject.error == AuthError(401, "INVALID_CREDENTIALS", "Invalid user credentials.")


def test_session_cookie_upgrade_checks_the_session() -> None:
    world = World()
    conn = world.conn()
    tokens = run_sync(world.core.auth.login(_creds(), "session", ClientInfo(), 0.0))
    cookie = f"directus_session_token={tokens.access_token}"
    actions = drive(conn.connect(None, "", cookie))
    assert [a.principal.via for a in actions if isinstance(a, StartApp)] == ["session"]
    run_sync(world.core.auth.logout(tokens.refresh_token))
    [reject] = drive(world.conn().connect(None, "", cookie))
    assert isinstance(reject, Reject) and reject.error.code == "INVALID_CREDENTIALS"


def _creds() -> Any:
    from tokenguard.auth.service import Credentials

    return Credentials(EMAIL, PASSWORD)


# -- public mode -------------------------------------------------------------------------------


def test_public_mode_opens_as_public_and_auth_upgrades() -> None:
    world = World("public")
    conn = world.conn()
    actions = drive(conn.connect(None, "", None))
    [start] = [a for a in actions if isinstance(a, StartApp)]
    assert start.principal.via == "public" and start.principal.user is None
    assert drive(conn.message('{"type":"ping"}')) == [SendJSON('{"type":"pong"}')]
    actions = drive(conn.message(frame(access_token=world.token(), uid="x")))
    assert sent(actions) == [{"type": "auth", "status": "ok", "uid": "x"}]
    [principal] = [a.principal for a in actions if isinstance(a, SetPrincipal)]
    assert principal.user == USER_ID


def test_public_mode_failed_reauth_stays_open_as_public() -> None:
    world = World("public")
    conn = world.conn()
    drive(conn.connect(None, "", None))
    drive(conn.message(frame(access_token=world.token())))
    actions = drive(conn.message(frame(access_token="garbage", uid=1)))
    assert sent(actions) == [
        {
            "type": "auth",
            "status": "error",
            "error": {"code": "AUTH_FAILED", "message": "Authentication failed."},
            "uid": 1,
        }
    ]
    assert not any(isinstance(a, Close) for a in actions)
    assert [a.principal.via for a in actions if isinstance(a, SetPrincipal)] == ["public"]
    assert drive(conn.message('{"type":"hello"}')) == [Deliver('{"type":"hello"}')]


# -- after the handshake -----------------------------------------------------------------------


def test_open_socket_frames() -> None:
    world = World()
    conn = world.conn()
    opened(world, conn, access_token=world.token())
    assert drive(conn.message('{"type":"ping","uid":"p"}')) == [
        SendJSON('{"type":"pong","uid":"p"}')
    ]
    assert drive(conn.message('{"type":"pong"}')) == []
    assert drive(conn.message("nope")) == [
        SendJSON(
            '{"type":"server","status":"error","error":{"code":"INVALID_PAYLOAD",'
            '"message":"Unable to parse the incoming message."}}'
        )
    ]
    text = '{"type":"subscribe","collection":"articles","uid":"s1"}'
    assert drive(conn.message(text)) == [Deliver(text)]
    assert drive(conn.message(text.encode())) == [Deliver(text.encode())]


def test_malformed_reauth_is_swallowed() -> None:
    world = World()
    conn = world.conn()
    opened(world, conn, access_token=world.token())
    assert drive(conn.message('{"type":"auth","email":"ada@example.com"}')) == []
    assert drive(conn.message('{"type":"auth","access_token":7}')) == []


def test_failed_reauth_closes_in_handshake_mode() -> None:
    world = World()
    conn = world.conn()
    opened(world, conn, access_token=world.token())
    actions = drive(conn.message(frame(access_token="garbage", uid="r")))
    assert sent(actions) == [
        {
            "type": "auth",
            "status": "error",
            "error": {"code": "AUTH_FAILED", "message": "Authentication failed."},
            "uid": "r",
        }
    ]
    assert Close(1000) in actions
    assert [a.principal.via for a in actions if isinstance(a, SetPrincipal)] == ["public"]


def test_reauth_switches_principal_and_rearms_expiry() -> None:
    world = World()
    other = world.users.create(make_user(id="other-user", email="bob@example.com"))
    conn = world.conn()
    opened(world, conn, access_token=world.token(ttl_s=60))
    actions = drive(conn.message(frame(access_token=world.token(ttl_s=600, user_id=other.id))))
    assert [a.principal.user for a in actions if isinstance(a, SetPrincipal)] == ["other-user"]
    assert SetTimer("expiry", 600.0) in actions


def test_token_expiry_pushes_token_expired_then_auth_timeout() -> None:
    world = World()
    conn = world.conn()
    opened(world, conn, access_token=world.token(ttl_s=3))
    assert conn.timer("expiry") == [SetTimer("expiry", 3.0)]  # early: re-armed
    world.clock.advance(3)
    actions = conn.timer("expiry")
    assert sent(actions) == [
        {
            "type": "auth",
            "status": "error",
            "error": {"code": "TOKEN_EXPIRED", "message": "Token expired."},
        }
    ]
    assert SetTimer("reauth", 10.0) in actions
    assert [a.principal.via for a in actions if isinstance(a, SetPrincipal)] == ["public"]
    # Frames other than auth are not handed to the app meanwhile.
    actions = drive(conn.message('{"type":"subscribe","uid":9}'))
    assert sent(actions) == [
        {
            "type": "auth",
            "status": "error",
            "error": {"code": "TOKEN_EXPIRED", "message": "Token expired."},
            "uid": 9,
        }
    ]
    actions = conn.timer("reauth")
    assert sent(actions) == [
        {
            "type": "auth",
            "status": "error",
            "error": {"code": "AUTH_TIMEOUT", "message": "Authentication timed out."},
        }
    ]
    assert Close(1000) in actions and conn.state == "closed"


def test_reauth_after_expiry_keeps_the_socket() -> None:
    world = World()
    conn = world.conn()
    opened(world, conn, access_token=world.token(ttl_s=3))
    world.clock.advance(5)
    conn.timer("expiry")
    actions = drive(conn.message(frame(access_token=world.token())))
    assert sent(actions) == [{"type": "auth", "status": "ok"}]
    assert CancelTimer("reauth") in actions and conn.state == "open"
    assert conn.timer("reauth") == []
    assert drive(conn.message('{"type":"x"}')) == [Deliver('{"type":"x"}')]


def test_expiry_in_public_mode_drops_to_public_without_closing() -> None:
    world = World("public")
    conn = world.conn()
    drive(conn.connect(None, f"access_token={world.token(ttl_s=3)}", None))
    world.clock.advance(3)
    actions = conn.timer("expiry")
    assert sent(actions)[0]["error"]["code"] == "TOKEN_EXPIRED"
    assert not any(isinstance(a, (Close, SetTimer)) for a in actions)
    assert drive(conn.message('{"type":"x"}')) == [Deliver('{"type":"x"}')]


def test_heartbeat() -> None:
    world = World()
    conn = world.conn()
    drive(conn.connect(None, f"access_token={STATIC}", None))
    # Just opened: that counts as a sign of life.
    assert conn.timer("heartbeat") == [SendJSON('{"type":"ping"}'), SetTimer("heartbeat", 30.0)]
    assert drive(conn.message('{"type":"pong"}')) == []
    assert conn.timer("heartbeat") == [SendJSON('{"type":"ping"}'), SetTimer("heartbeat", 30.0)]
    # No frame since that ping: the client is gone.
    assert conn.timer("heartbeat") == [Close(1000), *ALL_TIMERS]


def test_heartbeat_disabled() -> None:
    world = World(websockets_heartbeat_enabled=False)
    assert drive(world.conn().connect(None, "", None)) == [Accept(), SetTimer("handshake", 10.0)]


def test_disconnect_cancels_everything() -> None:
    world = World()
    conn = world.conn()
    opened(world, conn, access_token=world.token())
    assert conn.disconnected() == ALL_TIMERS
    assert drive(conn.message('{"type":"x"}')) == [] and conn.timer("expiry") == []


# -- properties ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
auth_frames = st.fixed_dictionaries(
    {"type": st.just("auth")},
    optional={
        "access_token": json_values,
        "refresh_token": json_values,
        "email": json_values,
        "password": json_values,
        "uid": json_values,
    },
)


@settings(max_examples=200, deadline=None)
@given(auth_frames)
def test_auth_frames_never_reach_the_app(message: dict[str, Any]) -> None:
    world = World()
    conn = world.conn()
    opened(world, conn, access_token=world.token())
    actions = drive(conn.message(json.dumps(message)))
    assert not any(isinstance(a, Deliver) for a in actions)
    for reply in sent(actions):  # never echoes a credential
        assert set(reply) <= {"type", "status", "error", "uid", "refresh_token"}


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200), json_values.map(json.dumps)))
def test_no_first_frame_but_a_good_auth_opens_the_socket(data: Any) -> None:
    world = World()
    conn = world.conn()
    drive(conn.connect(None, "", None))
    actions = drive(conn.message(data))
    assert not any(isinstance(a, (StartApp, Deliver)) for a in actions)
    assert sent(actions) == [HANDSHAKE_FAILED] and Close(1000) in actions


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=100), st.binary(max_size=100), json_values.map(json.dumps)))
def test_parse_message_accepts_only_typed_objects(data: Any) -> None:
    parsed = parse_message(data)
    if parsed is not None:
        assert isinstance(parsed["type"], str)
        uid = parsed.get("uid")
        assert uid is None or (isinstance(uid, (str, int, float)) and not isinstance(uid, bool))


def test_principal_repr_of_actions_hides_the_session() -> None:
    principal = Principal(user="u", role=None, via="session", session="secret-session-id")
    assert "secret-session-id" not in repr(StartApp(principal))


def test_a_logout_reaches_a_session_socket_at_the_next_heartbeat() -> None:
    world = World()
    conn = world.conn()
    tokens = run_sync(world.core.auth.login(_creds(), "session", ClientInfo(), 0.0))
    drive(conn.connect(None, "", f"directus_session_token={tokens.access_token}"))
    assert drive(conn.timer("heartbeat")) == [
        SendJSON('{"type":"ping"}'),
        SetTimer("heartbeat", 30.0),
    ]
    run_sync(world.core.auth.logout(tokens.refresh_token))
    drive(conn.message('{"type":"pong"}'))
    actions = drive(conn.timer("heartbeat"))
    assert sent(actions) == [
        {"type": "ping"},
        {
            "type": "auth",
            "status": "error",
            "error": {"code": "TOKEN_EXPIRED", "message": "Token expired."},
        },
    ]
    assert SetTimer("reauth", 10.0) in actions and conn.state == "expired"
    assert [a.principal.via for a in actions if isinstance(a, SetPrincipal)] == ["public"]


def test_a_session_check_that_cannot_answer_keeps_the_socket() -> None:
    world = World()
    conn = world.conn()
    tokens = run_sync(world.core.auth.login(_creds(), "session", ClientInfo(), 0.0))
    drive(conn.connect(None, "", f"directus_session_token={tokens.access_token}"))

    def down(*_: Any) -> None:
        raise ConnectionError("store down")

    world.sessions.get = down  # type: ignore[method-assign]
    assert drive(conn.timer("heartbeat")) == [
        SendJSON('{"type":"ping"}'),
        SetTimer("heartbeat", 30.0),
    ]
    assert conn.state == "open"


# -- settings ---------------------------------------------------------------------------------------


def test_settings_from_the_environment() -> None:
    from tokenguard.config import Settings

    settings = Settings.from_env(
        {
            "SECRET": SECRET,
            "WEBSOCKETS_ENABLED": "true",
            "WEBSOCKETS_REST_AUTH": "strict",
            "WEBSOCKETS_REST_AUTH_TIMEOUT": "2.5",
            "WEBSOCKETS_REST_CONN_LIMIT": "Infinity",
            "WEBSOCKETS_HEARTBEAT_PERIOD": "15",
            "TOKENGUARD_GRAPHQL_ENABLED": "true",
            "TOKENGUARD_GRAPHQL_AUTH_SERVICE_PATH": "/service/auth",
        }
    )
    assert settings.websockets_enabled and settings.websockets_rest_auth == "strict"
    assert settings.websockets_rest_auth_timeout_s == 2.5
    assert settings.websockets_rest_conn_limit is None
    assert settings.websockets_heartbeat_period_s == 15.0
    assert settings.graphql_enabled and settings.graphql_path == "/graphql/system"
    defaults = Settings.from_env({"SECRET": SECRET})
    assert not defaults.websockets_enabled and defaults.websockets_rest_auth == "handshake"
    assert defaults.websockets_rest_auth_timeout_s == 10.0
    assert defaults.websockets_rest_path == "/websocket"
    assert not defaults.graphql_enabled and defaults.graphql_auth_service_path is None


@pytest.mark.parametrize(
    "env",
    [
        {"WEBSOCKETS_REST_AUTH": "open"},
        {"WEBSOCKETS_REST_AUTH_TIMEOUT": "0"},
        {"WEBSOCKETS_REST_AUTH_TIMEOUT": "soon"},
        {"WEBSOCKETS_HEARTBEAT_PERIOD": "-1"},
        {"WEBSOCKETS_REST_CONN_LIMIT": "-3"},
        {"WEBSOCKETS_REST_PATH": "websocket"},
        {"TOKENGUARD_GRAPHQL_PATH": "/graphql/"},
    ],
)
def test_bad_settings_refuse_to_start(env: dict[str, str]) -> None:
    from tokenguard.config import Settings
    from tokenguard.errors import ConfigError

    with pytest.raises(ConfigError):
        Settings.from_env({"SECRET": SECRET, **env})
