"""A FastAPI app wrapped by tokenguard, with the principal as a dependency.

Run it with ``bash examples/run.sh fastapi`` (or ``python -m examples.fastapi_app.app`` with
``SECRET`` set). Like the other examples it listens on ``HOST``/``PORT`` (default
127.0.0.1:8055), keeps users in ``DB_FILENAME`` (SQLite) or in memory, and seeds an
administrator from ``ADMIN_EMAIL``/``ADMIN_PASSWORD``/``ADMIN_TOKEN``. The schema at
``/openapi.json`` (and the docs at ``/docs``) show the Bearer security scheme.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from examples.users import users_me_body
from tokenguard import Principal, TokenGuard
from tokenguard.errors import invalid_credentials
from tokenguard.integrations.fastapi import current_user, install, optional_user, require_role
from tokenguard.users import afind_user, aseed_from_env

guard = TokenGuard(flavour="async")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Seeded here, awaited: with DB_CLIENT=pg the guard's user store is an async one. Every
    # worker of a server may seed at once; the losers find the winner's administrator.
    await aseed_from_env(guard.users)
    yield
    await guard.aclose()  # ours: the middleware leaves a guard it was given to its owner


app = FastAPI(title="tokenguard FastAPI example", lifespan=lifespan)
install(app, guard)

User = Annotated[Principal, Depends(current_user)]


@app.get("/")
async def home(principal: Annotated[Principal, Depends(optional_user)]) -> dict[str, Any]:
    """Public: the public role is attached when there is no token."""
    return {"data": {"hello": "world", "role": principal.role, "via": principal.via}}


@app.get("/users/me")
async def users_me(principal: User) -> dict[str, Any]:
    """Who am I, as Directus's ``GET /users/me`` answers it."""
    try:
        user = await afind_user(guard.users, principal.user or "")
    except LookupError:  # deleted since its token was issued
        raise invalid_credentials() from None
    return users_me_body(user)


@app.get("/private")
async def private(principal: User) -> dict[str, Any]:
    """Any logged-in user."""
    return {"data": {"secret": "for users only", "user": principal.user}}


@app.get("/admin", dependencies=[Depends(require_role("administrator"))])
async def admin() -> dict[str, Any]:
    """Administrators only (a role, or the admin_access flag)."""
    return {"data": {"secret": "for administrators only"}}


def main() -> None:
    import uvicorn

    host = os.environ.get("HOST", "127.0.0.1")
    uvicorn.run(app, host=host, port=int(os.environ.get("PORT", "8055")))


if __name__ == "__main__":
    main()
