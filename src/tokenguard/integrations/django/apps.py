"""The app configuration: ``"tokenguard.integrations.django"`` in ``INSTALLED_APPS`` gives
``manage.py tokenguard ...``; the middleware and the rest work without it."""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["TokenGuardConfig"]


class TokenGuardConfig(AppConfig):  # type: ignore[misc]  # Django ships no types
    """No models, no migrations: the label only has to differ from ``django``."""

    name = "tokenguard.integrations.django"
    label = "tokenguard"
    verbose_name = "tokenguard"
