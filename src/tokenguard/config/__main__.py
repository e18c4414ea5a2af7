"""``python -m tokenguard.config``: print the configuration reference, the text of
``docs/configuration.md`` (``python -m tokenguard.config > docs/configuration.md``)."""

from __future__ import annotations

import sys

from .reference import reference_markdown

sys.stdout.write(reference_markdown())
