"""The WSGI shell under Werkzeug and Flask (environ keys, current_user, g.user, helpers)."""

from __future__ import annotations

from flask import Flask, g
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from tests.helpers.tokens import OTHER_SECRET, SECRET, mint
from tokenguard import ENVIRON_PRINCIPAL, ENVIRON_ROLE, ENVIRON_USER, TokenGuardWSGI
from tokenguard.integrations.flask import TokenGuardFlask, current_user, require_role, require_user

USER = "8f0c2b1e-4c5d-4e6f-9a0b-1c2d3e4f5a6b"


@Request.application
def plain(request: Request) -> Response:
    env = request.environ
    return Response(f"{env[ENVIRON_USER]}|{env[ENVIRON_ROLE]}|{env[ENVIRON_PRINCIPAL].via}")


def test_werkzeug_environ_keys() -> None:
    client = Client(TokenGuardWSGI(plain, secret=SECRET, public_role="anon"))
    assert client.get("/").get_data(as_text=True) == "None|anon|public"
    assert client.get("/", headers={"Authorization": f"Bearer {mint()}"}).get_data(as_text=True) == f"{USER}|editor-role|jwt"
    r = client.get("/", headers={"Authorization": f"Bearer {mint(secret=OTHER_SECRET)}"})
    assert r.status_code == 403
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert r.get_data() == b'{"errors":[{"message":"Invalid token.","extensions":{"code":"INVALID_TOKEN"}}]}'


def make_flask() -> Flask:
    app = Flask(__name__)
    TokenGuardFlask(app, secret=SECRET)

    @app.get("/")
    def index() -> dict[str, object]:
        return {"user": current_user.user, "role": current_user.role, "g": g.user.via}

    @app.get("/me")
    @require_user
    def me() -> dict[str, object]:
        return {"id": current_user.user}

    @app.get("/admin")
    @require_role("administrator")
    def admin() -> dict[str, object]:
        return {"ok": True}

    return app


def test_flask_current_user_and_g() -> None:
    client = make_flask().test_client()
    assert client.get("/").json == {"user": None, "role": None, "g": "public"}
    assert client.get("/", headers={"Authorization": f"Bearer {mint()}"}).json == {"user": USER, "role": "editor-role", "g": "jwt"}


def test_flask_helpers() -> None:
    client = make_flask().test_client()
    r = client.get("/me")
    assert r.status_code == 401 and r.json == {"errors": [{"message": "Invalid user credentials.", "extensions": {"code": "INVALID_CREDENTIALS"}}]}
    assert client.get("/me", headers={"Authorization": f"Bearer {mint()}"}).json == {"id": USER}
    r = client.get("/admin", headers={"Authorization": f"Bearer {mint()}"})
    assert r.status_code == 403 and r.json["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert client.get("/admin", headers={"Authorization": f"Bearer {mint(role='administrator')}"}).json == {"ok": True}
    assert client.get("/admin", headers={"Authorization": f"Bearer {mint(role='x', admin_access=True)}"}).json == {"ok": True}


def test_flask_refusal_before_view() -> None:
    client = make_flask().test_client()
    r = client.get("/?access_token=a&access_token=b")
    assert r.status_code == 400 and r.json["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"
    r = client.get("/", headers={"Authorization": f"Bearer {mint(exp=1)}"})
    assert r.status_code == 401 and r.json == {"errors": [{"message": "Token expired.", "extensions": {"code": "TOKEN_EXPIRED"}}]}


def test_repeated_authorization_headers_joined_by_the_server_are_400() -> None:
    client = Client(TokenGuardWSGI(plain, secret=SECRET))
    token = mint()
    r = client.get("/", headers={"Authorization": f"Bearer {token}, Bearer {token}"})
    assert r.status_code == 400
    assert r.get_json()["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"
    # A comma inside one malformed value is still one (refused) token, never a downgrade.
    for value, status in (("Bearer ,", 401), ("Bearer a,b", 401), (f"Bearer {token},x", 403)):
        assert client.get("/", headers={"Authorization": value}).status_code == status, value
    # Another scheme with commas (Digest) is not a token and stays public.
    r = client.get("/", headers={"Authorization": 'Digest username="a", realm="b"'})
    assert r.get_data(as_text=True) == "None|None|public"


def test_flask_g_user_is_the_principal_unless_the_app_sets_it() -> None:
    app = Flask(__name__)
    TokenGuardFlask(app, secret=SECRET)

    @app.get("/g")
    def read_g() -> dict[str, object]:
        return {"attr": g.user.via, "get": g.get("user").via, "in": "user" in g, "other": g.get("nope", "dflt")}

    @app.get("/own")
    def own() -> dict[str, object]:
        g.user = "mine"
        return {"attr": g.user, "get": g.get("user")}

    client = app.test_client()
    auth = {"Authorization": f"Bearer {mint()}"}
    assert client.get("/g", headers=auth).json == {"attr": "jwt", "get": "jwt", "in": True, "other": "dflt"}
    assert client.get("/g").json == {"attr": "public", "get": "public", "in": True, "other": "dflt"}
    assert client.get("/own", headers=auth).json == {"attr": "mine", "get": "mine"}
    with app.app_context():  # no request: no principal, an ordinary missing attribute
        assert g.get("user") is None and "user" not in g
        try:
            g.user
        except AttributeError:
            pass
        else:
            raise AssertionError("g.user outside a request must be missing")


def test_flask_keeps_a_custom_globals_class() -> None:
    from flask.ctx import _AppCtxGlobals

    class Mine(_AppCtxGlobals):
        flavour = "custom"

    app = Flask(__name__)
    app.app_ctx_globals_class = Mine
    TokenGuardFlask(app, secret=SECRET)

    @app.get("/")
    def index() -> dict[str, object]:
        return {"flavour": g.flavour, "via": g.user.via}

    assert app.test_client().get("/").json == {"flavour": "custom", "via": "public"}


def test_wsgi_repeated_header_still_meets_a_query_token() -> None:
    client = Client(TokenGuardWSGI(plain, secret=SECRET, public_role="anon"))
    header = {"Authorization": f"Bearer {mint()}"}
    for _ in range(2):  # the second answer comes from the memo
        assert client.get("/", headers=header).get_data(as_text=True) == f"{USER}|editor-role|jwt"
    r = client.get("/?access_token=other", headers=header)
    assert r.status_code == 400
    assert client.get("/?a=1", headers=header).get_data(as_text=True) == f"{USER}|editor-role|jwt"
