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
