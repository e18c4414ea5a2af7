"""Two FastAPI apps, the same routes: one behind ``app.add_middleware(TokenGuardMiddleware)``
(no exception handler), one set up by ``install(app)``. Run by uvicorn in
``tests/integrations/test_fastapi.py``; settings come from the environment."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Security

from tokenguard import Principal, TokenGuardMiddleware
from tokenguard.integrations.fastapi import current_user, install


def make(setup: str) -> FastAPI:
    app = FastAPI()
    if setup == "install":
        install(app)
    else:
        app.add_middleware(TokenGuardMiddleware)  # type: ignore[arg-type]

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"ok": setup}

    @app.get("/me")
    async def me(p: Annotated[Principal, Depends(current_user)]) -> dict[str, Any]:
        return {"user": p.user, "role": p.role}

    @app.get("/admins")
    async def admins(p: Annotated[Principal, Security(current_user, scopes=["admin"])]) -> dict[str, Any]:
        return {"user": p.user}

    return app


plain = make("add_middleware")
installed = make("install")
