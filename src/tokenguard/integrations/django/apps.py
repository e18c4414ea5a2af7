"""The app configuration: ``"tokenguard.integrations.django"`` in ``INSTALLED_APPS`` gives
``manage.py tokenguard ...``, and changes Django makes to its users (the admin, a group
added, ``is_active`` cleared) revoke their access tokens; the middleware and the rest work
without it."""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["TokenGuardConfig"]


class TokenGuardConfig(AppConfig):  # type: ignore[misc]  # Django ships no types
    """No models, no migrations: the label only has to differ from ``django``."""

    name = "tokenguard.integrations.django"
    label = "tokenguard"
    verbose_name = "tokenguard"

    def ready(self) -> None:
        """Changes Django makes to its users revoke their tokens
        (:mod:`tokenguard.integrations.django.signals`)."""
        from .signals import connect  # the app registry is ready: the user model can load

        connect()
