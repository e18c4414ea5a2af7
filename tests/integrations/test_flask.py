"""The Flask integration's decorators: async views, and a decorator written above the route."""

from __future__ import annotations

import pytest
from flask import Blueprint, Flask

from tests.helpers.tokens import SECRET, mint
from tokenguard.integrations.flask import (
    DecoratorOrderError,
    TokenGuardFlask,
    current_user,
    require_role,
    require_user,
)

USER = "8f0c2b1e-4c5d-4e6f-9a0b-1c2d3e4f5a6b"
UNAUTHORIZED = {"errors": [{"message": "Invalid user credentials.", "extensions": {"code": "INVALID_CREDENTIALS"}}]}
FORBIDDEN = {"errors": [{"message": "You don't have permission to access this.", "extensions": {"code": "FORBIDDEN"}}]}


def async_app() -> Flask:
    app = Flask(__name__)
    TokenGuardFlask(app, secret=SECRET)

    @app.get("/me")
    @require_user
    async def me() -> dict[str, object]:
        return {"id": current_user.user}

    @app.get("/admin")
    @require_role("administrator")
    async def admin() -> dict[str, object]:
        return {"ok": True}

    return app


def test_async_views_under_require_user() -> None:
    client = async_app().test_client()
    r = client.get("/me")
    assert (r.status_code, r.json) == (401, UNAUTHORIZED)
    r = client.get("/me", headers={"Authorization": f"Bearer {mint()}"})
    assert (r.status_code, r.json) == (200, {"id": USER})


def test_async_views_under_require_role() -> None:
    client = async_app().test_client()
    r = client.get("/admin")
    assert (r.status_code, r.json) == (401, UNAUTHORIZED)
    r = client.get("/admin", headers={"Authorization": f"Bearer {mint()}"})
    assert (r.status_code, r.json) == (403, FORBIDDEN)
    r = client.get("/admin", headers={"Authorization": f"Bearer {mint(role='administrator')}"})
    assert (r.status_code, r.json) == (200, {"ok": True})


def test_a_decorator_above_the_route_is_refused_where_it_is_written() -> None:
    app = Flask(__name__)
    TokenGuardFlask(app, secret=SECRET)
    with pytest.raises(DecoratorOrderError, match=r"route /open\): @require_user / @require_role must be written below @app.route"):

        @require_user
        @app.get("/open")
        def open_view() -> str:
            return "secret"

    with pytest.raises(DecoratorOrderError, match="Swap the two decorators"):

        @require_role("administrator")
        @app.get("/open-async")
        async def open_async() -> str:
            return "secret"


def test_a_decorator_above_a_route_defined_before_the_extension_is_refused_at_init() -> None:
    app = Flask(__name__)

    @require_user
    @app.get("/open")
    def open_view() -> str:
        return "secret"

    with pytest.raises(DecoratorOrderError, match=r"open_view \(route /open\)"):
        TokenGuardFlask(app, secret=SECRET)


def test_a_blueprint_with_a_decorator_above_its_route_is_refused_when_registered() -> None:
    bp = Blueprint("reports", __name__)

    @require_user
    @bp.get("/reports")
    def reports() -> str:
        return "secret"

    app = Flask(__name__)
    TokenGuardFlask(app, secret=SECRET)
    with pytest.raises(DecoratorOrderError, match=r"reports \(route /reports\)"):
        app.register_blueprint(bp)


def test_the_right_order_in_a_blueprint_is_served_guarded() -> None:
    bp = Blueprint("reports", __name__)

    @bp.get("/reports")
    @require_user
    def reports() -> str:
        return "secret"

    app = Flask(__name__)
    TokenGuardFlask(app, secret=SECRET)
    app.register_blueprint(bp)
    client = app.test_client()
    r = client.get("/reports")
    assert (r.status_code, r.json) == (401, UNAUTHORIZED)
    r = client.get("/reports", headers={"Authorization": f"Bearer {mint()}"})
    assert (r.status_code, r.get_data(as_text=True)) == (200, "secret")


def test_settings_from_app_config_then_the_environment(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("TOKENGUARD_PUBLIC_ROLE", "from-env")
    monkeypatch.setenv("SESSION_COOKIE_NAME", "env_session")
    app = Flask(__name__)
    app.config.update(
        SECRET=SECRET,
        ACCESS_TOKEN_TTL="5m",
        TOKENGUARD_PUBLIC_ROLE="from-config",
        REFRESH_TOKEN_COOKIE_SECURE=True,
        TOKENGUARD_QUERY_PARAMS=["access_token", "token"],
        TOKENGUARD_PUBLIC_ROL="typo",
        SECRET_KEY="flask's own, not ours",
    )
    with caplog.at_level("WARNING", logger="tokenguard"):
        extension = TokenGuardFlask(app, login_stall_ms=0)
    settings = extension.guard.settings  # type: ignore[union-attr]
    assert settings.access_token_ttl_ms == 300_000  # app.config
    assert settings.public_role == "from-config"  # app.config over the environment
    # The environment is still honoured; Flask's own SESSION_COOKIE_NAME ("session", its
    # session cookie) is Flask's, not a tokenguard setting.
    assert app.config["SESSION_COOKIE_NAME"] == "session"
    assert settings.session_cookie_name == "env_session"
    assert settings.refresh_cookie_secure is True
    assert settings.query_params == ("access_token", "token")
    assert settings.login_stall_ms == 0  # keyword arguments over both
    warnings = [r.getMessage() for r in caplog.records]
    assert "TOKENGUARD_PUBLIC_ROL is set but tokenguard reads no such setting; did you mean TOKENGUARD_PUBLIC_ROLE?" in warnings
    assert not any("SECRET_KEY" in w for w in warnings)
    client = app.test_client()

    @app.get("/role")
    def role() -> dict[str, object]:
        return {"role": current_user.role}

    assert client.get("/role").json == {"role": "from-config"}
    extension.close()
    assert extension.guard.closed  # type: ignore[union-attr]


def test_a_guard_given_is_left_to_its_owner() -> None:
    from tokenguard import TokenGuard

    guard = TokenGuard(secret=SECRET)
    extension = TokenGuardFlask(Flask(__name__), guard=guard)
    extension.close()
    assert not guard.closed
    guard.close()
