"""Logging: redaction of credentials in URLs, headers and records, and the audit trail.

``RedactingFilter`` and ``install_log_redaction`` live in :mod:`tokenguard.logs.filter`;
they are re-exported here, where the README has always pointed.
"""

from .filter import LOGGERS, RedactingFilter, install_log_redaction, redaction_filter

__all__ = ["LOGGERS", "RedactingFilter", "install_log_redaction", "redaction_filter"]
