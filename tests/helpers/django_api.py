"""The test site's URLconf: django_site's views, and Django REST framework's under ``/api/``
(DRF reads Django's settings when imported, so it is imported only once they are set)."""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from tests.helpers import django_site
from tokenguard.integrations.drf import HasRole, IsAdmin


class Whoami(APIView):
    """DRF: any authenticated caller; POST is an unsafe method (CSRF for cookies)."""

    permission_classes = (IsAuthenticated,)

    def get(self, request: Any) -> Response:
        return Response(
            {"user": request.user.pk, "role": request.user.role, "via": request.auth.via}
        )

    def post(self, request: Any) -> Response:
        return Response({"posted": True, "user": request.user.pk})


class Editors(APIView):
    permission_classes = (HasRole("editor"),)

    def get(self, request: Any) -> Response:
        return Response({"editor": request.user.pk})


class Admin(APIView):
    permission_classes = (IsAdmin,)

    def get(self, request: Any) -> Response:
        return Response({"admin": request.user.pk})


class Public(APIView):
    permission_classes = ()

    def get(self, request: Any) -> Response:
        return Response({"authenticated": request.user.is_authenticated, "auth": request.auth is not None})


urlpatterns = [
    *django_site.urlpatterns,
    path("api/whoami", Whoami.as_view()),
    path("api/editors", Editors.as_view()),
    path("api/admin", Admin.as_view()),
    path("api/public", Public.as_view()),
]
