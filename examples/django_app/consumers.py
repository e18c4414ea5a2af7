"""A Channels consumer: ``scope["user"]`` is the caller tokenguard authenticated at the
upgrade (``TokenGuardChannelsMiddleware`` in ``asgi.py``)."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class Whoami(AsyncJsonWebsocketConsumer):
    """Says who the caller is, then echoes each JSON message with the caller's id."""

    async def connect(self) -> None:
        await self.accept()
        user = self.scope["user"]
        await self.send_json(
            {"data": {"id": user.pk, "role": user.role, "via": self.scope["principal"].via}}
        )

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"data": {"echo": content, "id": self.scope["user"].pk}})
