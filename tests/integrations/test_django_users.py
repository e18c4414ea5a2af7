"""Django as it is: ``django.contrib.auth`` users as tokenguard's users, the authentication
backend, Django REST framework's authentication and permissions, the Channels middleware and
``manage.py tokenguard``; through Django's test clients, DRF's ``APIClient`` and Channels'
``WebsocketCommunicator``. Statuses and bodies exact.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.conf import settings as django_settings

from tests.helpers.django_site import SETTINGS

if not django_settings.configured:
    django_settings.configure(**SETTINGS)
    django.setup()

from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import AsyncClient, Client, override_settings
from rest_framework.test import APIClient

from tests.helpers.auth import INVALID_CREDENTIALS, SECRET, error_body
from tokenguard.integrations.channels import TokenGuardChannelsMiddleware
from tokenguard.integrations.django import get_guard
from tokenguard.integrations.django.users import DjangoPasswords, DjangoUserStore, NotAvailable
from tokenguard.stores.base import User
from tokenguard.stores.memory import MemorySessionStore

PASSWORD = "correct horse battery staple"
JSON = "application/json; charset=utf-8"
FORBIDDEN = error_body("FORBIDDEN", "You don't have permission to access this.")
CROSS = "Cross-site request refused: the Origin of a request authenticated by cookie is not trusted"


@pytest.fixture(scope="module", autouse=True)
def database() -> None:
    call_command("migrate", verbosity=0, run_syncdb=True)


def options(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "secret": SECRET,
        "django_users": {"roles": {"Editors": "editor", "Admins": "administrator"}},
        "sessions": MemorySessionStore(),
        "login_stall_ms": 0,
        "public_role": "public",
    }
    base.update(changes)
    return base


@pytest.fixture(autouse=True)
def guard() -> Iterator[None]:
    model = get_user_model()
    model.objects.all().delete()
    Group.objects.all().delete()
    with override_settings(TOKENGUARD=options()):
        yield


def account(email: str = "Ada@Example.com", *, groups: tuple[str, ...] = (), **fields: Any) -> Any:
    user = get_user_model().objects.create_user(
        username=email.split("@")[0], email=email, password=PASSWORD, **fields
    )
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture(params=["wsgi", "asgi"])
def client(request: pytest.FixtureRequest) -> Any:
    """Django's WSGI test client, or its ASGI one called synchronously."""
    if request.param == "wsgi":
        return Client(headers={"Host": "testserver"})
    inner = AsyncClient(headers={"Host": "testserver"})

    class Sync:
        def __getattr__(self, method: str) -> Any:
            return lambda *a, **k: async_to_sync(getattr(inner, method))(*a, **k)

    return Sync()


def login(client: Any, email: str = "ada@example.com", password: str = PASSWORD, **extra: Any) -> Any:
    body = {"email": email, "password": password, **extra}
    return client.post("/auth/login", data=json.dumps(body), content_type="application/json")


# -- the user store --------------------------------------------------------------------------


def test_a_django_user_reads_as_a_tokenguard_user() -> None:
    ada = account(groups=("Editors",), first_name="Ada", last_name="Lovelace", is_staff=True)
    store = get_guard().users
    assert isinstance(store, DjangoUserStore)
    expected = User(
        id=str(ada.pk),
        email="Ada@example.com",  # Django lower-cases the domain
        password_hash=ada.password,
        role="editor",
        app_access=True,
        first_name="Ada",
        last_name="Lovelace",
    )
    assert store.get_by_id(str(ada.pk)) == expected
    assert store.get_by_email("ada@EXAMPLE.com") == expected
    assert store.get_by_email("ada@example.co") is None
    assert store.get_by_email("") is None
    for not_an_id in ("", " 1", f"0{ada.pk}", "x", "9" * 30):
        assert store.get_by_id(not_an_id) is None
    assert store.get_by_token_hash("a" * 64) is None  # no column: no static token exists
    assert store.get_by_external_identifier("anything") is None
    root = account("root@example.com", is_superuser=True)
    assert store.get_by_id(str(root.pk)) == User(
        id=str(root.pk),
        email="root@example.com",
        password_hash=root.password,
        admin_access=True,
        app_access=True,
    )
    assert [u.email for u in store.list_users()] == ["Ada@example.com", "root@example.com"]


def test_two_accounts_with_one_e_mail_are_never_guessed_between() -> None:
    account("same@example.com")
    get_user_model().objects.create_user(username="other", email="SAME@example.com")
    store = get_guard().users
    assert store.get_by_email("same@example.com").email == "same@example.com"  # exact wins
    assert store.get_by_email("Same@Example.com") is None
    get_user_model().objects.create_user(username="third", email="same@example.com")
    assert store.get_by_email("same@example.com") is None


def test_writes_map_onto_django_fields_and_refuse_what_has_no_column() -> None:
    ada = account()
    store = get_guard().users
    uid = str(ada.pk)
    changed = store.update(uid, role="editor", status="suspended", first_name="Ada")
    assert (changed.role, changed.status, changed.first_name) == ("editor", "suspended", "Ada")
    ada.refresh_from_db()
    assert not ada.is_active and [g.name for g in ada.groups.all()] == ["Editors"]
    assert store.update(uid, role=None, status="active").role is None
    assert list(ada.groups.all()) == []
    with pytest.raises(NotAvailable, match="static tokens are not available"):
        store.update(uid, token_hash="b" * 64)
    with pytest.raises(NotAvailable, match="two-factor authentication is not available"):
        store.update(uid, tfa_secret="sealed")
    with pytest.raises(NotAvailable, match="role 'nobody'"):
        store.update(uid, role="nobody")
    with pytest.raises(ValueError, match="unknown user field"):
        store.update(uid, password="clear text")
    account("bob@example.com")
    with pytest.raises(ValueError, match="another user has this email"):
        store.update(uid, email="BOB@example.com")
    assert store.update("424242", status="active") is None
    made = store.create(User(id="ignored", email="new@example.com", role="administrator"))
    assert (made.email, made.role, made.password_hash is None) == ("new@example.com", "administrator", False)
    assert get_user_model().objects.get(pk=int(made.id)).has_usable_password() is False
    with pytest.raises(ValueError):
        store.create(User(id="x", email="NEW@example.com"))
    assert store.delete(made.id) is True and store.delete(made.id) is False


def test_optional_columns_of_a_custom_model_are_refused_by_name() -> None:
    with pytest.raises(Exception, match="columns: nickname"):
        DjangoUserStore(columns={"nickname": "x"})


# -- /auth/login, refresh, the views ---------------------------------------------------------


def test_login_refresh_and_views_with_an_existing_account(client: Any) -> None:
    ada = account(groups=("Editors",))
    r = login(client, "ADA@example.com")
    assert r.status_code == 200, r.content
    data = r.json()["data"]
    assert list(data) == ["expires", "refresh_token", "access_token"]
    bearer = {"Authorization": f"Bearer {data['access_token']}"}
    who = client.get("/whoami", headers=bearer).json()
    assert (who["user"]["pk"], who["user"]["role"], who["via"]) == (str(ada.pk), "editor", "jwt")
    assert client.get("/private", headers=bearer).json() == {"method": "GET", "user": str(ada.pk)}
    r = client.get("/admin", headers=bearer)
    assert (r.status_code, r.content) == (403, FORBIDDEN)
    refreshed = client.post(
        "/auth/refresh",
        data=json.dumps({"refresh_token": data["refresh_token"]}),
        content_type="application/json",
    )
    assert refreshed.status_code == 200
    assert refreshed.json()["data"]["refresh_token"] != data["refresh_token"]


def test_wrong_password_unknown_and_inactive_accounts_are_refused_alike(client: Any) -> None:
    account()
    account("off@example.com", is_active=False)
    for email, password in (
        ("ada@example.com", "wrong"),
        ("nobody@example.com", PASSWORD),
        ("off@example.com", PASSWORD),
    ):
        r = login(client, email, password)
        assert (r.status_code, r.content) == (401, INVALID_CREDENTIALS)
        assert r["Content-Type"] == JSON


def test_an_outdated_hash_is_upgraded_by_django_at_login() -> None:
    ada = account()
    ada.password = django_md5(PASSWORD)
    ada.save()
    assert login(Client()).status_code == 200
    ada.refresh_from_db()
    assert ada.password.startswith("pbkdf2_sha256$1000$")
    assert ada.check_password(PASSWORD)
    assert login(Client()).status_code == 200


def django_md5(password: str) -> str:
    from django.contrib.auth.hashers import MD5PasswordHasher

    return str(MD5PasswordHasher().encode(password, "saltsalt"))


def test_django_passwords_verify_tokenguards_own_argon2_hashes() -> None:
    from tokenguard.auth.passwords import hash_password

    passwords = DjangoPasswords()
    stored = hash_password(PASSWORD)
    assert passwords.verify(stored, PASSWORD) is True
    assert passwords.verify(stored, "wrong") is False
    assert passwords.needs_rehash(stored) is True
    assert passwords.verify(None, PASSWORD) is False
    assert passwords.verify("!unusable", PASSWORD) is False
    assert passwords.needs_rehash(passwords.hash(PASSWORD)) is False
    assert passwords.verify(passwords.hash(PASSWORD), "\ud800") is False  # JSON allows it


# -- the authentication backend --------------------------------------------------------------


@override_settings(
    AUTHENTICATION_BACKENDS=["tokenguard.integrations.django.backends.TokenGuardBackend"]
)
def test_the_backend_logs_in_by_e_mail_through_djangos_hashers() -> None:
    ada = account()
    account("off@example.com", is_active=False)
    assert authenticate(None, username="ADA@example.com", password=PASSWORD) == ada
    assert authenticate(None, email="ada@example.com", password=PASSWORD) == ada
    assert authenticate(None, username="ada@example.com", password="wrong") is None
    assert authenticate(None, username="nobody@example.com", password=PASSWORD) is None
    assert authenticate(None, username="off@example.com", password=PASSWORD) is None


# -- Django REST framework -------------------------------------------------------------------


def api_login(client: APIClient, email: str = "ada@example.com", mode: str = "json") -> Any:
    return client.post("/auth/login", {"email": email, "password": PASSWORD, "mode": mode}, format="json")


@pytest.mark.parametrize("middleware", [True, False], ids=["middleware", "no-middleware"])
def test_drf_bearer_query_and_permissions(middleware: bool) -> None:
    ada = account(groups=("Editors",))
    root = account("root@example.com", is_superuser=True)
    token = api_login(APIClient()).json()["data"]["access_token"]
    root_token = api_login(APIClient(), "root@example.com").json()["data"]["access_token"]
    with override_settings(MIDDLEWARE=[] if not middleware else SETTINGS["MIDDLEWARE"]):
        api = APIClient()  # its handler reads MIDDLEWARE at its first request
        r = api.get("/api/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert (r.status_code, r.json()) == (200, {"user": str(ada.pk), "role": "editor", "via": "jwt"})
        r = api.get("/api/whoami", {"access_token": token})
        assert (r.status_code, r.json()["user"]) == (200, str(ada.pk))
        r = api.get("/api/whoami")
        assert (r.status_code, r.json()) == (
            401,
            {"detail": "Authentication credentials were not provided."},
        )
        assert r["WWW-Authenticate"] == 'Bearer realm="api"'
        assert api.get("/api/public").json() == {"authenticated": False, "auth": False}
        assert api.get("/api/editors", HTTP_AUTHORIZATION=f"Bearer {token}").json() == {
            "editor": str(ada.pk)
        }
        r = api.get("/api/admin", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert (r.status_code, r.json()) == (
            403,
            {"detail": "You do not have permission to perform this action."},
        )
        r = api.get("/api/editors", HTTP_AUTHORIZATION=f"Bearer {root_token}")
        assert (r.status_code, r.json()) == (200, {"editor": str(root.pk)})
        assert api.get("/api/admin", HTTP_AUTHORIZATION=f"Bearer {root_token}").status_code == 200
        r = api.get("/api/editors")
        assert r.status_code == 401
        # A Bearer POST needs no CSRF token (DRF's SessionAuthentication would ask for one).
        r = api.post("/api/whoami", {}, format="json", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert (r.status_code, r.json()) == (200, {"posted": True, "user": str(ada.pk)})


def test_drf_without_the_middleware_refuses_a_bad_token_itself() -> None:
    with override_settings(MIDDLEWARE=[]):
        api = APIClient()
        r = api.get("/api/whoami", HTTP_AUTHORIZATION="Bearer not-a-jwt")
        assert (r.status_code, r.json()) == (401, {"detail": "Invalid user credentials."})
        assert r["WWW-Authenticate"] == 'Bearer realm="api"'
        r = api.get("/api/public", HTTP_AUTHORIZATION="Bearer not-a-jwt")
        assert r.status_code == 401


def test_drf_with_the_middleware_a_bad_token_gets_directus_error() -> None:
    r = APIClient().get("/api/whoami", HTTP_AUTHORIZATION="Bearer not-a-jwt")
    assert (r.status_code, r.content) == (401, INVALID_CREDENTIALS)


@pytest.mark.parametrize("middleware", [True, False], ids=["middleware", "no-middleware"])
def test_drf_checks_csrf_only_for_cookie_authenticated_unsafe_requests(middleware: bool) -> None:
    ada = account()
    r = api_login(APIClient(), mode="session")
    session = r.cookies["directus_session_token"].value
    with override_settings(MIDDLEWARE=[] if not middleware else SETTINGS["MIDDLEWARE"]):
        api = APIClient(HTTP_HOST="testserver")
        api.cookies["directus_session_token"] = session
        assert api.get("/api/whoami").json() == {"user": str(ada.pk), "role": None, "via": "session"}
        r = api.post("/api/whoami", {}, format="json", HTTP_ORIGIN="https://evil.example")
        assert r.status_code == 403
        if middleware:
            assert r.content == error_body("FORBIDDEN", CROSS, reason=CROSS)
        else:
            assert r.json() == {"detail": CROSS}
        r = api.post("/api/whoami", {}, format="json", HTTP_ORIGIN="http://testserver")
        assert (r.status_code, r.json()) == (200, {"posted": True, "user": str(ada.pk)})


# -- Django's own changes revoke (signals) -------------------------------------------------


def _status(token: str) -> int:
    return Client().get("/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code  # type: ignore[no-any-return]


def _token() -> str:
    time.sleep(0.002)  # past the millisecond of the previous revocation
    token: str = login(Client()).json()["data"]["access_token"]
    assert _status(token) == 200
    return token


def test_changes_django_makes_to_a_user_revoke_its_tokens() -> None:
    ada = account(groups=("Editors",))
    admins = Group.objects.create(name="Admins")
    # Harmless saves: a name, Django's own login bookkeeping.
    token = _token()
    ada.first_name = "Augusta"
    ada.save()
    ada.save(update_fields=["last_login"])
    assert _status(token) == 200
    # A group change that moves the role (the first mapped group wins: Editors, then
    # Admins), either way round; one that does not move it revokes nothing.
    ada.groups.add(admins)
    assert _status(token) == 200  # still an editor
    ada.groups.remove(Group.objects.get(name="Editors"))
    assert _status(token) == 401  # an administrator now
    token = _token()
    admins.user_set.remove(ada)
    assert _status(token) == 401
    # Staff (app access), superuser (admin access), is_active (status), the password.
    for change in ("is_staff", "is_superuser"):
        token = _token()
        setattr(ada, change, True)
        ada.save()
        assert _status(token) == 401, change
    token = _token()
    ada.set_password(PASSWORD)  # a new hash (a new salt), as changepassword makes
    ada.save()
    assert _status(token) == 401
    token = _token()
    ada.is_active = False
    ada.save()
    assert _status(token) == 401
    # Django's bulk update sends no signal: that path is the app's to revoke.
    get_user_model().objects.filter(pk=ada.pk).update(is_active=True)
    token = _token()
    ada.refresh_from_db()
    ada.delete()
    assert _status(token) == 401


def test_changes_django_makes_to_a_user_are_audited() -> None:
    """Each change that revokes records one user_change event (no client: a signal has no
    request), its reason the field; a harmless save records nothing."""
    from tokenguard.stores.audit import MemoryAuditStore

    trail = MemoryAuditStore()
    with override_settings(TOKENGUARD=options(audit=trail)):
        ada = account(groups=("Editors",))
        admins = Group.objects.create(name="Admins")
        pk = str(ada.pk)
        ada.first_name = "Augusta"
        ada.save()
        ada.groups.remove(Group.objects.get(name="Editors"))  # editor -> no role
        admins.user_set.add(ada)  # from the group's side: the role before is unknown
        ada.is_active = False
        ada.save()
        ada.delete()
        recorded = [
            (e.event, e.outcome, e.user_id, e.ip, e.user_agent, e.origin, e.provider, e.reason)
            for e in reversed(trail.recent())
        ]
    assert recorded == [
        ("user_change", "success", pk, None, None, None, "default", reason)
        # The first: account() adds Editors after creating the user (no role -> editor).
        for reason in ("role", "role", "role", "status", "deleted")
    ]


# -- Channels --------------------------------------------------------------------------------


async def consumer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A WebSocket app that accepts and reports who the middleware said the caller is."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    user = scope["user"]
    await send(
        {
            "type": "websocket.send",
            "text": json.dumps(
                {
                    "user": user.pk,
                    "authenticated": user.is_authenticated,
                    "role": user.role,
                    "via": scope["principal"].via,
                    "query": scope["query_string"].decode(),
                }
            ),
        }
    )


def channels_connect(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    async def run() -> Any:
        app = TokenGuardChannelsMiddleware(consumer)
        communicator = WebsocketCommunicator(app, path, headers=headers or [])
        connected, code = await communicator.connect()
        if not connected:
            return ("refused", code)
        message = json.loads(await communicator.receive_from())
        await communicator.disconnect()
        return message

    return async_to_sync(run)()


def test_channels_consumer_sees_the_user_of_the_token() -> None:
    ada = account(groups=("Editors",))
    token = login(Client()).json()["data"]["access_token"]
    assert channels_connect(f"/ws?access_token={token}&room=1") == {
        "user": str(ada.pk),
        "authenticated": True,
        "role": "editor",
        "via": "jwt",
        "query": "room=1",
    }
    assert channels_connect("/ws", [(b"authorization", f"Bearer {token}".encode())])["user"] == str(ada.pk)
    assert channels_connect("/ws") == {
        "user": None,
        "authenticated": False,
        "role": "public",
        "via": "public",
        "query": "",
    }
    assert channels_connect("/ws?access_token=not-a-jwt") == ("refused", 1008)


def test_channels_refuses_a_cross_site_upgrade_with_the_session_cookie() -> None:
    account()
    client = Client()
    r = login(client, mode="session")
    cookie = f"directus_session_token={r.cookies['directus_session_token'].value}".encode()
    assert channels_connect("/ws", [(b"cookie", cookie), (b"origin", b"https://evil.example"), (b"host", b"testserver")]) == ("refused", 1008)
    same = channels_connect("/ws", [(b"cookie", cookie), (b"origin", b"http://testserver"), (b"host", b"testserver")])
    assert (same["via"], same["authenticated"]) == ("session", True)


async def listening_consumer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accepts, says who it serves, then echoes until told the socket ended."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": scope["principal"].via})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            scope["ended"].append(message.get("code"))
            return
        await send({"type": "websocket.send", "text": message.get("text")})


def test_channels_socket_is_closed_when_its_token_is_revoked() -> None:
    ada = account(groups=("Editors",))
    token = login(Client()).json()["data"]["access_token"]

    async def run() -> Any:
        ended: list[Any] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await listening_consumer({**scope, "ended": ended}, receive, send)

        communicator = WebsocketCommunicator(
            TokenGuardChannelsMiddleware(app), f"/ws?access_token={token}"
        )
        connected, _ = await communicator.connect()
        assert connected
        assert await communicator.receive_from() == "jwt"
        await communicator.send_to("hello")
        assert await communicator.receive_from() == "hello"
        # A change of role (or a logout, a suspension...) revokes the user's tokens.
        get_guard().revoke_user(str(ada.pk))
        closing = await communicator.receive_output(timeout=2)
        await communicator.wait(timeout=2)
        return closing, ended

    closing, ended = async_to_sync(run)()
    assert closing == {"type": "websocket.close", "code": 4403, "reason": "Token revoked."}
    assert ended == [4403]


# -- manage.py tokenguard --------------------------------------------------------------------


def test_manage_py_tokenguard_runs_the_cli_on_django_users(capsys: pytest.CaptureFixture[str]) -> None:
    ada = account(groups=("Editors",), is_staff=True)
    call_command("tokenguard", "users", "list", "--json")
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["email"], r["role"], r["app_access"]) for r in rows] == [
        (str(ada.pk), "Ada@example.com", "editor", True)
    ]
    call_command("tokenguard", "users", "suspend", "ada@example.com")
    ada.refresh_from_db()
    assert ada.is_active is False
    with pytest.raises(Exception, match="status 1"):
        call_command("tokenguard", "users", "suspend", "nobody@example.com")
    assert "no such user: nobody@example.com" in capsys.readouterr().err


def test_a_database_that_cannot_answer_is_a_503_never_a_login(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import OperationalError

    account()
    store = get_guard().users

    def broken() -> Any:
        raise OperationalError("database is locked")

    monkeypatch.setattr(store, "_objects", broken)
    r = login(Client())
    reason = "the user table cannot be reached (OperationalError)"
    assert (r.status_code, r.content) == (
        503,
        error_body(
            "SERVICE_UNAVAILABLE",
            f'Service "database" is unavailable. {reason}.',
            service="database",
            reason=reason,
        ),
    )
    monkeypatch.undo()
    assert login(Client()).status_code == 200


def test_django_users_settings_are_checked_when_the_guard_is_built() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from tokenguard.stores.memory import MemoryUserStore

    with override_settings(TOKENGUARD=options(django_users=True)):
        core = get_guard()
        assert isinstance(core.users, DjangoUserStore) and core.users.roles == {}
        assert isinstance(core.auth.passwords, DjangoPasswords)
    both = options(users=MemoryUserStore())
    with override_settings(TOKENGUARD=both), pytest.raises(ImproperlyConfigured, match="not both"):
        get_guard()
    typo = options(django_users={"rolez": {}})
    with override_settings(TOKENGUARD=typo), pytest.raises(ImproperlyConfigured, match="rolez"):
        get_guard()
    store = DjangoUserStore()
    with override_settings(TOKENGUARD=options(django_users=None, users=store)):
        assert get_guard().users is store
        assert isinstance(get_guard().auth.passwords, DjangoPasswords)  # the store's own


def test_two_factor_is_refused_with_a_clear_reason_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    import pyotp

    account()
    client = Client()
    bearer = {"Authorization": f"Bearer {login(client).json()['data']['access_token']}"}
    r = client.post(
        "/users/me/tfa/generate",
        data=json.dumps({"password": PASSWORD}),
        content_type="application/json",
        headers=bearer,
    )
    assert r.status_code == 200, r.content
    secret = r.json()["data"]["secret"]
    r = client.post(
        "/users/me/tfa/enable",
        data=json.dumps({"secret": secret, "otp": pyotp.TOTP(secret).now()}),
        content_type="application/json",
        headers=bearer,
    )
    reason = "Couldn't reach the store"
    assert (r.status_code, r.content) == (
        503,
        error_body(
            "SERVICE_UNAVAILABLE",
            f'Service "database" is unavailable. {reason}.',
            service="database",
            reason=reason,
        ),
    )
    assert "two-factor authentication is not available with Django's users" in caplog.text
