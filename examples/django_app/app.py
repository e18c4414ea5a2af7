"""A Django project wrapped by tokenguard, configured like a Directus server.

Run it with ``bash examples/run.sh django`` (or ``python -m examples.django_app.app`` with
``SECRET`` set): uvicorn serves the ASGI application on ``HOST``/``PORT`` (default
127.0.0.1:8055); ``gunicorn examples.django_app.wsgi:application`` serves the WSGI one. Users
live in ``DB_FILENAME`` (SQLite) or in memory; ``ADMIN_EMAIL``/``ADMIN_PASSWORD``/
``ADMIN_TOKEN`` seed an administrator (``apps.py``). Same routes as the other examples, plus
Django REST framework views (``/api/me``, ``/api/editors``: ``api.py``) and a Channels
WebSocket consumer (``/ws/whoami``: ``consumers.py``; ``daphne
examples.django_app.asgi:application`` serves it too). ``settings_users.py`` uses the
project's own ``django.contrib.auth`` users instead (``manage.py``).
"""

from __future__ import annotations

import os


def main() -> None:
    import uvicorn

    # Django's ASGI handler does not speak the lifespan protocol; the guard is closed at exit.
    uvicorn.run(
        "examples.django_app.asgi:application",
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8055")),
        lifespan="off",
    )


if __name__ == "__main__":
    main()
