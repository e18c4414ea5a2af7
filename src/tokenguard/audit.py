"""Moved to :mod:`tokenguard.logs.audit`; this module keeps existing imports working."""

from .logs.audit import *  # noqa: F403
from .logs.audit import __all__ as __all__
