"""End to end: a real uvicorn configured from the environment (``AUTH_<NAME>_*``), a real
OpenLDAP ``slapd`` and the SQLite user store, all on 127.0.0.1."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.auth import SECRET
from tests.helpers.ldap_server import (
    BIND_DN,
    BIND_PASSWORD,
    GROUP_DN,
    ROOT_DN,
    ROOT_PASSWORD,
    USER_DN,
    USERS,
    LdapServer,
)
from tests.helpers.servers import AUTH_APP_UVICORN, Server, serve
from tokenguard.stores.sqlite import SQLiteUserStore

pytestmark = pytest.mark.e2e

UVICORN = AUTH_APP_UVICORN
ROLE = "6f1d3c2b-0000-4000-8000-00000000ad01"
EDITOR_ROLE = "6f1d3c2b-0000-4000-8000-00000000ed02"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Server, LdapServer, Path]]:
    db = tmp_path / "tokenguard.db"
    with LdapServer(tmp_path / "slapd") as directory:
        env = {
            "SECRET": SECRET,
            "DB_FILENAME": str(db),
            "LOGIN_STALL_TIME": "0",
            "AUTH_PROVIDERS": "corp",
            "AUTH_CORP_DRIVER": "ldap",
            "AUTH_CORP_CLIENT_URL": directory.url,
            "AUTH_CORP_BIND_DN": BIND_DN,
            "AUTH_CORP_BIND_PASSWORD": BIND_PASSWORD,
            "AUTH_CORP_USER_DN": USER_DN,
            "AUTH_CORP_USER_ATTRIBUTE": "uid",
            "AUTH_CORP_GROUP_DN": GROUP_DN,
            "AUTH_CORP_ROLE_MAPPING": f'{{"admins": "{ROLE}", "editors": "{EDITOR_ROLE}"}}',
            "AUTH_CORP_CLIENT_TIMEOUT": "1000",
        }
        with serve(UVICORN, env, tmp_path, ready_path="/auth") as server:
            yield server, directory, db


def test_a_directory_user_logs_in_and_uses_the_token(
    stack: tuple[Server, LdapServer, Path],
) -> None:
    server, directory, db = stack
    ada = USERS["ada"]
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/auth").json() == {
            "data": [{"name": "corp", "driver": "ldap"}], "disableDefault": False,
        }
        wrong = http.post("/auth/login/corp", json={"identifier": "ada", "password": "nope"})
        assert wrong.status_code == 401
        reply = http.post("/auth/login/corp", json={"identifier": "ada", "password": ada.password})
        assert reply.status_code == 200, reply.text
        access = reply.json()["data"]["access_token"]
        whoami = http.get("/whoami", headers={"authorization": f"Bearer {access}"})
        store = SQLiteUserStore(db)
        try:
            user = store.get_by_external_identifier(ada.dn)
        finally:
            store.close()
        assert user is not None and user.role == ROLE and user.provider == "corp"
        assert whoami.text == f"user={user.id}"
        # The directory goes away: a 503, never a 500, and the server keeps serving.
        directory.stop()
        down = http.post("/auth/login/corp", json={"identifier": "ada", "password": ada.password})
        assert down.status_code == 503
        assert down.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        directory.start()
        again = http.post("/auth/login/corp", json={"identifier": "ada", "password": ada.password})
        assert again.status_code == 200
    assert ada.password not in server.output()


def _move(directory: LdapServer, dn: str, source: str, target: str) -> None:
    """Move ``dn`` from the group ``source`` to ``target`` at the directory, as its
    administrator would."""
    import ldap3

    server = ldap3.Server(directory.url)
    with ldap3.Connection(server, ROOT_DN, ROOT_PASSWORD, auto_bind=True) as admin:
        assert admin.modify(f"cn={target},{GROUP_DN}", {"member": [(ldap3.MODIFY_ADD, [dn])]})
        # A groupOfNames keeps at least one member: someone else takes the place.
        others = [u.dn for u in USERS.values() if u.dn != dn][:1]
        source_dn = f"cn={source},{GROUP_DN}"
        assert admin.modify(source_dn, {"member": [(ldap3.MODIFY_REPLACE, others)]}), admin.result


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    claims: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def test_a_group_change_at_the_directory_revokes_the_older_tokens_at_the_next_login(
    stack: tuple[Server, LdapServer, Path],
) -> None:
    server, directory, db = stack
    ada = USERS["ada"]
    login = {"identifier": "ada", "password": ada.password, "mode": "json"}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        first = http.post("/auth/login/corp", json=login)
        assert first.status_code == 200, first.text
        old = first.json()["data"]
        assert _claims(old["access_token"])["role"] == ROLE
        bearer = {"authorization": f"Bearer {old['access_token']}"}
        assert http.get("/whoami", headers=bearer).status_code == 200
        # The directory's administrator moves ada from admins to editors; her next login
        # syncs the role (ROLE_MAPPING), and what she obtained as an admin stops working.
        _move(directory, ada.dn, "admins", "editors")
        second = http.post("/auth/login/corp", json=login)
        assert second.status_code == 200, second.text
        new = second.json()["data"]["access_token"]
        assert _claims(new)["role"] == EDITOR_ROLE
        refused = http.get("/whoami", headers=bearer)
        assert refused.status_code == 401
        assert refused.json()["errors"][0]["extensions"]["code"] == "INVALID_CREDENTIALS"
        assert http.get("/whoami", headers={"authorization": f"Bearer {new}"}).status_code == 200
        # The first login's session refreshes into the new role.
        refreshed = http.post(
            "/auth/refresh", json={"refresh_token": old["refresh_token"], "mode": "json"}
        )
        assert refreshed.status_code == 200, refreshed.text
        assert _claims(refreshed.json()["data"]["access_token"])["role"] == EDITOR_ROLE
        # Logging in again without a change revokes nothing.
        third = http.post("/auth/login/corp", json=login).json()["data"]["access_token"]
        assert http.get("/whoami", headers={"authorization": f"Bearer {new}"}).status_code == 200
        assert http.get("/whoami", headers={"authorization": f"Bearer {third}"}).status_code == 200
    store = SQLiteUserStore(db)
    try:
        user = store.get_by_external_identifier(ada.dn)
    finally:
        store.close()
    assert user is not None and user.role == EDITOR_ROLE
