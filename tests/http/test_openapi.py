"""The OpenAPI document (tokenguard.http.openapi) against what the router really serves.

Every request goes through the real WSGI shell and the real router: a documented method on a
documented path is answered by tokenguard (never the app, never ``ROUTE_NOT_FOUND``); any other
method there is ``ROUTE_NOT_FOUND`` (or, for ``OPTIONS``, the app's); a path the document does
not list is the app's. The document itself must validate as OpenAPI 3.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from werkzeug.test import Client

from tests.helpers.auth import FAST, SECRET, plain_wsgi_app
from tests.helpers.oidc_provider import CLIENT_ID, CLIENT_SECRET, running_provider
from tokenguard import TokenGuard, TokenGuardWSGI
from tokenguard.errors import ConfigError
from tokenguard.http.openapi import ENDPOINTS, build_document
from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
APP_REPLY = b"app "


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _core(**overrides: Any) -> TokenGuard:
    return TokenGuard(
        secret=SECRET,
        users=MemoryUserStore(),
        sessions=MemorySessionStore(),
        passwords=FAST,
        login_stall_ms=0,
        **overrides,
    )


@pytest.fixture(scope="module")
def full() -> Iterator[TokenGuard]:
    """Every route tokenguard can serve, switched on."""
    with running_provider() as idp:
        yield _core(
            public_url="http://127.0.0.1:9",
            graphql_enabled=True,
            graphql_auth_service_path="/service/auth",
            jwt_keys=json.dumps({"active": "k1", "keys": [{"kid": "k1", "pem": _pem()}]}),
            auth_providers="idp,other",
            auth_provider_env={
                "AUTH_IDP_DRIVER": "openid",
                "AUTH_IDP_CLIENT_ID": CLIENT_ID,
                "AUTH_IDP_CLIENT_SECRET": CLIENT_SECRET,
                "AUTH_IDP_ISSUER_URL": idp.url + "/.well-known/openid-configuration",
                # Served at /auth/login/other; nothing listens there (no login is tried).
                "AUTH_OTHER_DRIVER": "ldap",
                "AUTH_OTHER_CLIENT_URL": "ldap://127.0.0.1:9",
                "AUTH_OTHER_BIND_DN": "",
                "AUTH_OTHER_BIND_PASSWORD": "",
                "AUTH_OTHER_USER_DN": "ou=people,dc=example,dc=org",
            },
        )


def _document(core: TokenGuard) -> dict[str, Any]:
    client = Client(TokenGuardWSGI(plain_wsgi_app, guard=core))
    reply = client.get("/server/specs/oas")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json; charset=utf-8"
    document: dict[str, Any] = json.loads(reply.data)
    return document


def _call(core: TokenGuard, method: str, path: str) -> tuple[int, bytes]:
    client = Client(TokenGuardWSGI(plain_wsgi_app, guard=core))
    reply = client.open(path, method=method)
    return reply.status_code, reply.data


def _route_not_found(status: int, body: bytes, method: str = "GET") -> bool:
    if method == "HEAD":  # the same answer without its body (the app's would be a 200)
        return status == 404 and body == b""
    return status == 404 and b'"ROUTE_NOT_FOUND"' in body


def test_the_document_is_valid_openapi_3_1(full: TokenGuard) -> None:
    document = _document(full)
    assert document["openapi"] == "3.1.0"
    validate(document)  # openapi-spec-validator picks the 3.1 schema from the version
    assert document == build_document(full.router)


#: The paths of a guard with every kind of route switched on (one SSO provider, "idp", and
#: one LDAP provider, "other").
EVERY_KIND_OF_PATH = frozenset(
    {
        "/auth",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/auth/sessions",
        "/auth/sessions/{id}",
        "/auth/password/request",
        "/auth/password/reset",
        "/users/me/tfa/generate",
        "/users/me/tfa/enable",
        "/users/me/tfa/disable",
        "/auth/login/idp",
        "/auth/login/idp/callback",
        "/auth/login/other",
        "/auth/jwks.json",
        "/graphql/system",
        "/service/auth",
        "/server/specs/oas",
    }
)


def test_every_kind_of_route_is_documented(full: TokenGuard) -> None:
    paths = _document(full)["paths"]
    assert set(paths) == EVERY_KIND_OF_PATH
    assert set(paths["/auth/login/idp/callback"]) == {"get", "head", "post"}
    assert set(paths["/graphql/system"]) == {"get", "post"}
    login = paths["/auth/login"]["post"]
    assert login["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LoginRequest"
    }
    assert {"200", "400", "401", "403", "429", "503"} <= set(login["responses"])
    error = _document(full)["components"]["schemas"]["Error"]
    assert error["properties"]["errors"]["items"]["required"] == ["message", "extensions"]
    refresh_cookies = {
        p["name"] for p in paths["/auth/refresh"]["post"]["parameters"] if p["in"] == "cookie"
    }
    assert refresh_cookies == {"directus_refresh_token", "directus_session_token"}
    callback = paths["/auth/login/idp/callback"]["get"]["parameters"]
    assert {"name": "openid.idp", "in": "cookie"}.items() <= callback[-1].items()
    tfa = paths["/users/me/tfa/generate"]["post"]
    assert {"bearerAuth": []} in tfa["security"] and {} not in tfa["security"]
    # A user's own sessions (not Directus's): a signed-in user only, the id in the path.
    assert set(paths["/auth/sessions"]) == {"get", "head", "delete"}
    assert set(paths["/auth/sessions/{id}"]) == {"delete"}
    one = paths["/auth/sessions/{id}"]["delete"]
    assert one["parameters"] == [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "A session id, as listed by `GET` on the collection."}
    ]
    assert {"204", "401", "403"} <= set(one["responses"]) and {} not in one["security"]
    listed = paths["/auth/sessions"]["get"]["responses"]["200"]["content"]
    assert listed["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SessionsResponse"
    }
    item = _document(full)["components"]["schemas"]["SessionsResponse"]["properties"]["data"]
    assert item["items"]["required"] == [
        "id", "created_on", "last_used_on", "expires", "ip", "user_agent", "origin", "current"
    ]


def test_documented_methods_are_answered_and_no_others(full: TokenGuard) -> None:
    """Through the real shell and dispatcher: the document is exactly what is served."""
    paths = _document(full)["paths"]
    for path, item in paths.items():
        for method in METHODS:
            status, body = _call(full, method, path)
            documented = method.lower() in item
            where = f"{method} {path} -> {status} {body[:120]!r}"
            if documented:
                assert not body.startswith(APP_REPLY), where
                assert not _route_not_found(status, body, method), where
                assert str(status) in item[method.lower()]["responses"], where
            elif method == "OPTIONS":
                assert body.startswith(APP_REPLY), where  # CORS stays the app's
            else:
                assert _route_not_found(status, body, method), where
            # One trailing slash is the same route (Express's non-strict routing).
            slash = _call(full, method, path + "/")
            assert (not slash[1].startswith(APP_REPLY)) == (method != "OPTIONS"), where


def test_the_router_table_is_the_document(full: TokenGuard) -> None:
    paths = _document(full)["paths"]
    served = {route.path: route for route in full.router.served()}
    assert set(served) == set(paths)
    for path, route in served.items():
        assert {m.lower() for m in route.methods} == set(paths[path]), path
        assert route.methods == ENDPOINTS[route.name].methods


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["/auth", "/users/me/tfa", "/server/specs", "/auth/login", "/graphql"]),
    st.text(alphabet="abcdefgjklmnopqrstuvwxyz/._-ABC", max_size=12),
)
def test_undocumented_paths_are_the_apps(full: TokenGuard, prefix: str, tail: str) -> None:
    path = prefix + tail
    documented = set(_document_cache(full)["paths"])
    if path in documented or path.rstrip("/") in documented or path.endswith("//"):
        return
    if path.rstrip("/") == "":
        return
    status, body = _call(full, "GET", path)
    assert body.startswith(APP_REPLY), (path, status, body)


_CACHE: dict[int, dict[str, Any]] = {}


def _document_cache(core: TokenGuard) -> dict[str, Any]:
    if id(core) not in _CACHE:
        _CACHE[id(core)] = _document(core)
    return _CACHE[id(core)]


def test_a_route_without_an_entry_cannot_be_registered(full: TokenGuard) -> None:
    with pytest.raises(ValueError, match="has no entry"):
        full.router._add("/auth/secret-door", "secret_door")


def test_default_document_and_disabled_login() -> None:
    core = _core(auth_disable_default=True)
    document = _document(core)
    validate(document)
    login = document["paths"]["/auth/login"]
    assert set(login) == {"post"}
    assert "200" not in login["post"]["responses"] and "404" in login["post"]["responses"]
    for method in METHODS:
        status, body = _call(core, method, "/auth/login")
        if method == "OPTIONS":
            assert body.startswith(APP_REPLY)
        else:
            assert _route_not_found(status, body, method), method
    assert "/auth/jwks.json" not in document["paths"]
    assert "/graphql/system" not in document["paths"]


def test_the_document_can_move_or_go() -> None:
    moved = _core(openapi_path="/openapi.json")
    assert _call(moved, "GET", "/openapi.json")[0] == 200
    assert _call(moved, "GET", "/server/specs/oas")[1].startswith(APP_REPLY)
    assert "/openapi.json" in build_document(moved.router)["paths"]
    off = _core(openapi_enabled=False)
    assert _call(off, "GET", "/server/specs/oas")[1].startswith(APP_REPLY)
    assert "/server/specs/oas" not in build_document(off.router)["paths"]


def test_two_routes_on_one_path_refuse_to_start() -> None:
    with pytest.raises(ConfigError, match="would serve both"):
        _core(openapi_path="/auth/login")


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENGUARD_OPENAPI_ENABLED", "false")
    monkeypatch.setenv("TOKENGUARD_OPENAPI_PATH", "/spec")
    from tokenguard.config import Settings

    settings = Settings.from_env(secret=SECRET)
    assert (settings.openapi_enabled, settings.openapi_path) == (False, "/spec")
    with pytest.raises(ConfigError, match="TOKENGUARD_OPENAPI_PATH"):
        Settings.from_env(secret=SECRET, openapi_path="spec/")


def test_the_document_follows_the_settings() -> None:
    core = _core(
        auth_prefix="/api/auth",
        tfa_prefix="/me/tfa",
        refresh_cookie_name="rt",
        query_params="jwt",
        public_url="https://api.example.com/",
    )
    document = _document(core)
    validate(document)
    assert "/api/auth/login" in document["paths"] and "/me/tfa/enable" in document["paths"]
    cookies = {p["name"] for p in document["paths"]["/api/auth/refresh"]["post"]["parameters"]}
    assert "rt" in cookies
    assert document["components"]["securitySchemes"]["accessToken"]["name"] == "jwt"
    assert document["servers"] == [{"url": "https://api.example.com"}]
