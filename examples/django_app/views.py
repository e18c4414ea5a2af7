"""The example's views: the same routes as the Flask and Starlette examples."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from examples.static import HEADERS, LOGIN_PAGE, asset
from examples.users import users_me_body
from tokenguard.errors import invalid_credentials, route_not_found
from tokenguard.integrations.django import (
    error_response,
    get_guard,
    requires_role,
    requires_user,
)


def home(request: HttpRequest) -> JsonResponse:
    """Public: anyone may call it; the public role is attached when there is no token."""
    return JsonResponse(
        {"data": {"hello": "world", "role": request.auth_role, "via": request.principal.via}}
    )


def users_me(request: HttpRequest) -> HttpResponse:
    """Who am I, as Directus's ``GET /users/me`` answers it, from ``request.user``."""
    if not request.user.is_authenticated:
        return error_response(invalid_credentials())
    user = get_guard().users.get_by_id(request.user.pk)
    if user is None:
        return error_response(invalid_credentials())
    return JsonResponse(users_me_body(user))


@requires_user
def private(request: HttpRequest) -> JsonResponse:
    """Any logged-in user; a POST authenticated by the session cookie must come from this
    origin (tokenguard's cross-site check)."""
    if request.method == "POST":
        return JsonResponse({"data": {"posted": True, "user": request.user.pk}})
    return JsonResponse({"data": {"secret": "for users only", "user": request.user.pk}})


@requires_role("administrator")
def admin(request: HttpRequest) -> JsonResponse:
    """Administrators only (a role, or the admin_access flag)."""
    return JsonResponse(
        {
            "data": {
                "secret": "for administrators only",
                "username": request.user.get_username(),
                "is_superuser": request.user.is_superuser,
            }
        }
    )


def login_page(request: HttpRequest) -> HttpResponse:
    """The login page (``examples/static``): session mode in a browser."""
    return _static(LOGIN_PAGE, request.path)


def static_file(request: HttpRequest, name: str) -> HttpResponse:
    return _static(name, request.path)


def _static(name: str, path: str) -> HttpResponse:
    found = asset(name)
    if found is None:
        return error_response(route_not_found(path))
    body, content_type = found
    return HttpResponse(body, content_type=content_type, headers=HEADERS)
