"""The ASGI application: ``uvicorn examples.django_app.asgi:application`` or
``daphne examples.django_app.asgi:application``. HTTP goes to Django (with tokenguard's
middleware); WebSockets go through Channels, authenticated by tokenguard at the upgrade."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")

# Django is set up first: the consumers and Channels' routing import models and settings.
http_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from tokenguard.integrations.channels import TokenGuardChannelsMiddleware  # noqa: E402

from .consumers import Whoami  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": TokenGuardChannelsMiddleware(
            URLRouter([path("ws/whoami", Whoami.as_asgi())])
        ),
    }
)
