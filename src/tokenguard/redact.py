"""Moved to :mod:`tokenguard.logs.redact`; this module keeps existing imports working."""

from .logs.redact import *  # noqa: F403
from .logs.redact import __all__ as __all__
