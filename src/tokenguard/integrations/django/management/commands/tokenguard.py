"""``manage.py tokenguard ...``: tokenguard's command line over the project's own stores.

The arguments are those of the ``tokenguard`` command (``manage.py tokenguard users list``,
``... users create admin@example.com --role administrator``, ``... tokens rotate ...``,
``manage.py tokenguard --help``); the users and sessions are those of the guard built from
``settings.TOKENGUARD`` (Django's own users with ``"django_users"``), so no ``--db`` is needed
(and ``db migrate``/``db status``, which act on a file, belong to the ``tokenguard`` command).
Needs ``"tokenguard.integrations.django"`` in ``INSTALLED_APPS``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from .....cli import main
from ...conf import close_guard, get_guard

__all__ = ["Command"]


def run_cli(argv: list[str]) -> int:
    """Run tokenguard's command line with ``argv`` on the guard's users and sessions."""
    guard = get_guard()
    # The stores are the guard's, whatever file the CLI would open: it is told of none, so
    # that it neither looks for one nor creates one.
    environ = {**os.environ, "DB_FILENAME": ":memory:"}
    try:
        return main(
            argv,
            environ=environ,
            store_factory=lambda _db: guard.users,  # type: ignore[arg-type,return-value]
            session_factory=lambda _db, _env: guard.sessions,  # type: ignore[arg-type,return-value]
        )
    finally:
        close_guard()  # the CLI closed the stores it was given: the next use builds anew


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no types
    help = "tokenguard's command line (users, tokens, tfa, audit...) on this project's stores"

    def run_from_argv(self, argv: list[str]) -> None:
        # Every argument is tokenguard's (--help included), not Django's option parser's.
        sys.exit(run_cli(argv[2:]))

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("arguments", nargs=argparse.REMAINDER, help="tokenguard's arguments")

    def handle(self, *args: Any, **options: Any) -> None:
        argv = [*args, *(options.get("arguments") or ())]
        status = run_cli([str(a) for a in argv])
        if status:
            raise CommandError(f"tokenguard exited with status {status}", returncode=status)
