"""Django REST framework views: tokenguard's authentication class and permissions by role."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from tokenguard.integrations.drf import HasRole


class Me(APIView):
    """Any caller with a token (Bearer, ``?access_token=`` or the session cookie)."""

    permission_classes = (IsAuthenticated,)

    def get(self, request: Any) -> Response:
        user = request.user  # a TokenGuardUser; request.auth is the Principal
        return Response({"data": {"id": user.pk, "role": user.role, "via": request.auth.via}})


class Editors(APIView):
    """Editors and administrators: 401 without a token, 403 for another role."""

    permission_classes = (HasRole("editor"),)

    def get(self, request: Any) -> Response:
        return Response({"data": {"editor": request.user.pk}})
