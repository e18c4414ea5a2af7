"""Settings of the Django example: a project with no database and no ``django.contrib.auth``,
where tokenguard decides who ``request.user`` is.

tokenguard reads the rest of its settings from the environment under Directus's names
(``SECRET``, ``DB_FILENAME``, ``REDIS``, ``ACCESS_TOKEN_TTL``…), as the other examples do;
``TOKENGUARD`` below could set any of them as keywords instead.
"""

from __future__ import annotations

import os
import secrets

# Django's own signing key (unused here: no sessions, no forms); not tokenguard's SECRET.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", *filter(None, [os.environ.get("HOST")])]

INSTALLED_APPS = ["examples.django_app"]  # seeds the demo administrator (apps.py)

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Answers /auth/*, and sets request.user / request.principal for the views below.
    "tokenguard.integrations.django.TokenGuardMiddleware",
]

TOKENGUARD = {"public_role": os.environ.get("TOKENGUARD_PUBLIC_ROLE", "public")}

# Django REST framework (api.py): tokenguard authenticates; with no django.contrib.auth here,
# the public caller is tokenguard's too; JSON only (the browsable API needs templates).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tokenguard.integrations.drf.TokenGuardAuthentication"],
    "UNAUTHENTICATED_USER": "tokenguard.integrations.drf.anonymous_user",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

ROOT_URLCONF = "examples.django_app.urls"
WSGI_APPLICATION = "examples.django_app.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
