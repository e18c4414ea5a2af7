"""The example with the project's own ``django.contrib.auth`` users as tokenguard's users:
``DJANGO_SETTINGS_MODULE=examples.django_app.settings_users``.

Accounts live in Django's database (``DJANGO_DB``, a SQLite file); create them as usual
(``manage.py migrate``, ``manage.py createsuperuser``, the admin). Their passwords work at
``/auth/login`` (and with ``@directus/sdk``), checked by Django's hashers; a superuser has
admin access, members of the "Editors" group the role ``editor``. Sessions are tokenguard's
(``DB_FILENAME``, ``REDIS`` or memory, as in the other examples).
"""

from __future__ import annotations

import os

from .settings import *  # noqa: F403
from .settings import INSTALLED_APPS, TOKENGUARD

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "tokenguard.integrations.django",  # manage.py tokenguard ...
    *INSTALLED_APPS,
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB", "django-users.sqlite3"),
    }
}
TOKENGUARD = {
    **TOKENGUARD,
    "django_users": {"roles": {"Administrators": "administrator", "Editors": "editor"}},
}
# Django's own logins (the admin, LoginView) by e-mail, as /auth/login.
AUTHENTICATION_BACKENDS = ["tokenguard.integrations.django.backends.TokenGuardBackend"]
