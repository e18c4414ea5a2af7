"""A small Django site for tests/integrations/test_django*.py: settings and URLconf
(``ROOT_URLCONF``).

Its views report what the middleware left on the request, sync and async alike; the ``api/``
views are Django REST framework's (tests/helpers/django_api.py, the URLconf). ``django.contrib.auth`` is installed (with a SQLite file)
for the tests of Django's own users; the middleware does not need it.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.views import View

from tokenguard.integrations.django import requires_role, requires_user

#: One file per test process: the ORM runs in worker threads under ASGI, and an in-memory
#: SQLite database is one per connection.
DATABASE = Path(tempfile.mkdtemp(prefix="tokenguard-django-")) / "site.db"

SETTINGS: dict[str, Any] = {
    "DEBUG": False,
    "SECRET_KEY": "django-test-only-8vQ2mX7pL4kR9wZ3nC6yB1hJ5sD0fG",
    # These views and DRF's (imported by Django once it is set up, as DRF needs).
    "ROOT_URLCONF": "tests.helpers.django_api",
    "ALLOWED_HOSTS": ["testserver", "127.0.0.1", "localhost"],
    "INSTALLED_APPS": [
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "rest_framework",
        "tokenguard.integrations.django",
    ],
    "MIDDLEWARE": ["tokenguard.integrations.django.TokenGuardMiddleware"],
    "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(DATABASE)}},
    # Fast hashes for the tests; MD5 stands for an outdated hasher a login upgrades from.
    "PASSWORD_HASHERS": [
        "tests.helpers.django_hashers.FastPBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ],
    "REST_FRAMEWORK": {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "tokenguard.integrations.drf.TokenGuardAuthentication"
        ],
        "UNAUTHENTICATED_USER": "tokenguard.integrations.drf.anonymous_user",
    },
    "USE_TZ": True,
    "LOGGING_CONFIG": None,
}


def _report(request: HttpRequest) -> dict[str, Any]:
    user = request.user  # type: ignore[attr-defined]
    scope = getattr(request, "scope", None)
    return {
        "user": {
            "pk": user.pk,
            "id": user.id,
            "username": user.get_username(),
            "is_authenticated": user.is_authenticated,
            "is_anonymous": user.is_anonymous,
            "is_active": user.is_active,
            "is_staff": user.is_staff,
            "is_superuser": user.is_superuser,
            "has_perm": user.has_perm("app.change_thing"),
            "role": user.role,
        },
        "via": request.principal.via,  # type: ignore[attr-defined]
        "auth_role": request.auth_role,  # type: ignore[attr-defined]
        "GET": dict(request.GET.items()),
        "QUERY_STRING": request.META.get("QUERY_STRING"),
        "full_path": request.get_full_path(),
        "scope_query": None if scope is None else _text(scope["query_string"]),
    }


def _text(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def whoami(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_report(request))


async def awhoami(request: HttpRequest) -> JsonResponse:
    user = await request.auser()  # type: ignore[attr-defined]
    assert user is request.user  # type: ignore[attr-defined]
    return JsonResponse(_report(request))


@requires_user
def private(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"method": request.method, "user": request.user.pk})  # type: ignore[attr-defined]


@requires_user
async def aprivate(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"method": request.method, "user": request.user.pk})  # type: ignore[attr-defined]


@requires_role("administrator")
def admin(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"admin": True})


@requires_role("editor-role", admin_ok=False)
async def editors(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"editor": True})


async def loop_thread(request: HttpRequest) -> JsonResponse:
    """The thread an async view (so the event loop) runs on."""
    return JsonResponse({"thread": threading.get_ident(), "via": request.principal.via})  # type: ignore[attr-defined]


@method_decorator(requires_role("editor-role"), name="dispatch")
class Reports(View):
    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"reports": [], "user": request.user.pk})  # type: ignore[attr-defined]


@login_required
def django_login_required(request: HttpRequest) -> JsonResponse:
    """Django's own decorator, reading request.user."""
    return JsonResponse({"user": request.user.pk})  # type: ignore[attr-defined]


urlpatterns = [
    path("reports", Reports.as_view()),
    path("loop-thread", loop_thread),
    path("login-required", django_login_required),
    path("whoami", whoami),
    path("awhoami", awhoami),
    path("private", private),
    path("aprivate", aprivate),
    path("admin", admin),
    path("editors", editors),
]
