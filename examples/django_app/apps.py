"""Seeds the demo administrator once Django is set up, in every server process."""

from __future__ import annotations

from django.apps import AppConfig


class DjangoExampleConfig(AppConfig):
    name = "examples.django_app"
    label = "tokenguard_example"

    def ready(self) -> None:
        from django.conf import settings

        from tokenguard.integrations.django import get_guard
        from tokenguard.users import seed_from_env

        if "django_users" in settings.TOKENGUARD:
            return  # Django's own accounts (settings_users.py): created with manage.py

        # The middleware uses this same guard (one per process, built from the settings).
        seed_from_env(get_guard().users)  # type: ignore[arg-type]
