"""Keep tokens out of every log a deployment writes.

:class:`RedactingFilter` rewrites a :class:`logging.LogRecord` in place (its message, its
arguments, its exception and stack text) with :mod:`tokenguard.redact`.
:func:`install_log_redaction`, called whenever a :class:`~tokenguard.app.TokenGuard` is
built, attaches one shared filter to the loggers that servers and frameworks write requests
and tracebacks to, so that nobody has to write logging configuration for it.

A filter on a logger sees only the records made on that very logger; a filter on a handler
sees every record the handler writes. Both are used: logger filters survive
``logging.config.dictConfig`` (which replaces handlers but keeps filters), handler filters
catch records that reach a handler from child loggers. For any other logger, one line::

    logging.getLogger("myapp").addFilter(RedactingFilter())
"""

from __future__ import annotations

import copy
import logging
import re
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .redact import (
    DEFAULT_COOKIE_NAMES,
    DEFAULT_SECRET_NAMES,
    Redactor,
    redactor_for,
    settings_cookie_names,
    settings_param_names,
)

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["LOGGERS", "RedactingFilter", "install_log_redaction", "redaction_filter"]

#: Loggers that servers and frameworks write request lines, URLs and tracebacks to.
LOGGERS: tuple[str, ...] = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "uvicorn.asgi",
    "gunicorn",
    "gunicorn.error",
    "gunicorn.access",
    "werkzeug",
    "flask.app",
    "starlette",
    "fastapi",
    "asyncio",
    "concurrent.futures",
    "hypercorn.error",
    "hypercorn.access",
    "tokenguard",
    "tokenguard.auth",
    "tokenguard.audit",
    "tokenguard.mail",
    "tokenguard.client",
)

# Child loggers of these, existing when the filter is installed, get it too.
_FAMILIES = ("uvicorn.", "gunicorn.", "werkzeug.", "tokenguard.", "starlette.", "fastapi.")

# Header-valued gunicorn atoms ("{authorization}i", "{http_cookie}e"): redacted by header.
_ATOM_SUFFIXES = ("}i", "}o", "}e")

_MARK = "_tokenguard_redacted"
_FORMATTER = logging.Formatter()
_PLAIN = (int, float, bool, type(None))


class _Redacted:
    """Stands in for a log argument of another type whose text had to be redacted; it
    formats as the original would have with ``%s`` and ``%r``."""

    __slots__ = ("_repr", "_str")

    def __init__(self, text: str, rep: str) -> None:
        self._str = text
        self._repr = rep

    def __str__(self) -> str:
        return self._str

    def __repr__(self) -> str:
        return self._repr


class _Names:
    """Every name that any TokenGuard of this process redacts, and the redactor for them."""

    def __init__(self) -> None:
        self.params: tuple[str, ...] = DEFAULT_SECRET_NAMES
        self.cookies: tuple[str, ...] = DEFAULT_COOKIE_NAMES
        self.redactor: Redactor = redactor_for(self.params, self.cookies)

    def add(self, params: tuple[str, ...], cookies: tuple[str, ...]) -> None:
        new_params = tuple(dict.fromkeys((*self.params, *params)))
        new_cookies = tuple(dict.fromkeys((*self.cookies, *cookies)))
        if new_params != self.params or new_cookies != self.cookies:
            self.params, self.cookies = new_params, new_cookies
            # One assignment, so a thread logging meanwhile sees the old or the new one.
            self.redactor = redactor_for(new_params, new_cookies)


_names = _Names()
_lock = threading.Lock()


class RedactingFilter(logging.Filter):
    """A :class:`logging.Filter` that hides tokens in every record it sees (never drops one).

    Without ``redactor`` it follows the names of every TokenGuard built in this process
    (:data:`~tokenguard.redact.DEFAULT_SECRET_NAMES`, the configured query parameters and
    ``TOKENGUARD_REDACT_NAMES``, the session and refresh cookies), so ``RedactingFilter()``
    is all a custom logger needs.
    """

    def __init__(self, redactor: Redactor | None = None, name: str = "") -> None:
        super().__init__(name)
        self._fixed = redactor
        # Format strings are few and constant: whether one names a secret is asked once.
        self._templates: dict[str, bool] = {}
        self._templates_for: Redactor | None = None
        self._keys: dict[str, tuple[str, ...]] = {}

    @property
    def redactor(self) -> Redactor:
        return self._fixed if self._fixed is not None else _names.redactor

    def filter(self, record: logging.LogRecord) -> bool:
        attributes = record.__dict__
        if _MARK in attributes:
            return True
        attributes[_MARK] = True
        try:
            self._redact(record, self._fixed or _names.redactor)
        except Exception:  # a broken record must still be logged, just not in the clear
            record.msg = "tokenguard could not redact this log record; it was dropped"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True

    def _format_keys(self, msg: str) -> tuple[str, ...]:
        keys = self._keys.get(msg)
        if keys is None:
            if len(self._keys) > 1024:
                self._keys = {}
            keys = self._keys[msg] = tuple(dict.fromkeys(_KEY_IN_FORMAT.findall(msg)))
        return keys

    def _mentions(self, msg: str, redactor: Redactor) -> bool:
        if self._templates_for is not redactor or len(self._templates) > 1024:
            self._templates = {}
            self._templates_for = redactor
        known = self._templates.get(msg)
        if known is None:
            known = self._templates[msg] = redactor._mentions(msg)
        return known

    def _redact(self, record: logging.LogRecord, redactor: Redactor) -> None:
        msg = record.msg
        args = record.args
        if not isinstance(msg, str):
            text = str(msg)
            new_text = redactor.text(text)
            if new_text is not text:
                record.msg = new_text
            msg = record.msg
        if args:
            keys = self._format_keys(msg) if type(msg) is str else None
            record.args = _redact_args(args, redactor, keys)
            # A name in the format string with its value in an argument
            # ("...?access_token=%s"): only the formatted message shows the pair.
            if type(msg) is str and self._mentions(msg, redactor):
                try:
                    full = record.getMessage()
                except Exception:  # leave a bad format to logging's own error report
                    full = None
                if full is not None:
                    red = redactor.text(full)
                    if red is not full:
                        record.msg = red
                        record.args = None
        elif isinstance(msg, str):
            record.msg = redactor.text(msg)
        if record.exc_info and record.exc_info[0] is not None:
            text = record.exc_text or _FORMATTER.formatException(record.exc_info)
            red = redactor.text(text)
            if red is not text:
                # Without exc_info no formatter can render the original again.
                record.exc_text = red
                record.exc_info = None
        elif record.exc_text:
            record.exc_text = redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.text(record.stack_info)


def _plain_text(args: tuple[Any, ...]) -> str | None:
    """All the text of ``args`` when they are only strings and numbers, else ``None``."""
    texts = []
    for arg in args:
        kind = type(arg)
        if kind is str:
            texts.append(arg)
        elif kind is not int and kind is not float and arg is not None and kind is not bool:
            return None
    return "\n".join(texts)


_KEY_IN_FORMAT = re.compile(r"%\(([^)]*)\)")


def _referenced(args: Mapping[str, Any], keys: tuple[str, ...] | None) -> list[str]:
    if keys is None:
        return list(args)
    found = []
    for key in keys:
        if key in args:
            found.append(key)
        elif key.lower() in args:  # gunicorn's atoms match "{Header}i" in any case
            found.append(key.lower())
    return found


def _redact_args(
    args: tuple[Any, ...] | Mapping[str, Any],
    redactor: Redactor,
    keys: tuple[str, ...] | None = None,
) -> tuple[Any, ...] | Mapping[str, Any]:
    if isinstance(args, Mapping):
        changes: dict[str, Any] = {}
        # Only what the format string shows: gunicorn passes the whole environ as atoms.
        for key in _referenced(args, keys):
            value = args[key]
            if isinstance(key, str) and key.startswith("{") and key.endswith(_ATOM_SUFFIXES):
                if isinstance(value, str):
                    new = redactor.text(redactor.header(key[1:-2], value))
                else:
                    new = _redact_value(value, redactor)
            else:
                new = _redact_value(value, redactor)
            if new is not value:
                changes[key] = new
        if not changes:
            return args
        # copy.copy keeps the mapping's class (gunicorn's SafeAtoms answers "-" for missing
        # atoms) without running its __init__ again, and leaves the caller's dict alone.
        out = copy.copy(args)
        for key, new in changes.items():
            out[key] = new  # type: ignore[index]
        return out
    # The common record (a server's access line): one look at all its text at once.
    text = _plain_text(args)
    if text is not None and not redactor._maybe(text):
        return args
    new_args = [_redact_value(a, redactor) for a in args]
    if all(n is a for n, a in zip(new_args, args, strict=True)):
        return args
    return tuple(new_args)


def _redact_value(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, bytes):
        return redactor.text(value)
    if isinstance(value, _PLAIN):
        return value
    try:
        text = str(value)
        rep = repr(value)
    except Exception:
        return value
    new_text = redactor.text(text)
    new_rep = redactor.text(rep)
    if new_text is text and new_rep is rep:
        return value
    return _Redacted(new_text, new_rep)


_filter = RedactingFilter()


def redaction_filter() -> RedactingFilter:
    """The shared filter that :func:`install_log_redaction` installs."""
    return _filter


def _attach_to_handlers(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        if _filter not in handler.filters:
            handler.addFilter(_filter)


def install_log_redaction(settings: Settings | None = None) -> RedactingFilter:
    """Redact tokens in the logs of uvicorn, gunicorn, Werkzeug, Flask, Starlette, asyncio
    and tokenguard itself, and in every handler that exists at the time (the root logger's,
    an app's, logging's last resort). Idempotent and cheap; each call adds the names of
    ``settings`` (the token parameters, the cookies).

    A logger made later, with handlers of its own, needs one line:
    ``logging.getLogger("name").addFilter(RedactingFilter())``.

    Returns the shared :class:`RedactingFilter`.
    """
    with _lock:
        if settings is not None:
            _names.add(settings_param_names(settings), settings_cookie_names(settings))
        loggers = [logging.getLogger(name) for name in LOGGERS]
        for name, existing in list(logging.root.manager.loggerDict.items()):
            if not isinstance(existing, logging.Logger):
                continue
            if name.startswith(_FAMILIES):
                loggers.append(existing)
            else:
                # Whatever a handler writes, from whichever logger, passes the filter.
                _attach_to_handlers(existing)
        for logger in loggers:
            if _filter not in logger.filters:
                logger.addFilter(_filter)
            _attach_to_handlers(logger)
        _attach_to_handlers(logging.getLogger())
        if logging.lastResort is not None and _filter not in logging.lastResort.filters:
            logging.lastResort.addFilter(_filter)
        flask_logging = sys.modules.get("flask.logging")
        default_handler = getattr(flask_logging, "default_handler", None)
        if isinstance(default_handler, logging.Handler) and _filter not in default_handler.filters:
            # Flask's app loggers are named after the app; they all share this handler.
            default_handler.addFilter(_filter)
    return _filter
