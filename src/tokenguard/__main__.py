"""``python -m tokenguard``: the command line (see :mod:`tokenguard.cli`)."""

from .cli import main

raise SystemExit(main())
