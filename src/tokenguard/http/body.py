"""Request bodies of the ``/auth`` routes: JSON parsing and Directus's (Joi) validation.

Parsing follows Express's ``express.json`` as Directus configures it: an empty body is ``{}``;
otherwise the body must be JSON whose first non-blank character is ``{`` or ``[`` (strict
mode), in UTF-8, at most ``MAX_PAYLOAD_SIZE`` bytes. Every failure is 400 ``INVALID_PAYLOAD``
with a ``reason``.

Deliberately stricter than Directus: a body declared as anything but ``application/json`` is
a 400, even an empty one (Directus silently reads it as ``{}``), so that a cross-site HTML
form or ``text/plain`` "simple request" can never drive these endpoints. A request with no
body and no ``Content-Type`` is still ``{}``, as in Directus.

Validation of the login payload reproduces Joi's messages for Directus's schema
``{email: string().email().required(), password: string().required(),
mode: valid('cookie','json','session'), otp: string()}`` (unknown keys allowed, first error
wins, keys checked in that order). The LDAP login's schema is the same with a required
``identifier: string()`` (any non-empty string) in place of the e-mail.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from typing import Any

from ..errors import AuthError, invalid_payload

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "LoginPayload",
    "is_email",
    "is_truthy",
    "parse_json_body",
    "validate_identifier_login",
    "validate_login",
]

#: Directus's ``MAX_PAYLOAD_SIZE`` default, "1mb" (bytes' 1mb = 1024 * 1024).
MAX_PAYLOAD_BYTES = 1024 * 1024

TOO_LARGE = "request entity too large"
NOT_JSON = "The request body must be JSON (Content-Type: application/json)"
MODES = ("cookie", "json", "session")

_BLANK = " \t\n\r"
_CHARSET = re.compile(r"[A-Za-z0-9_.:-]{1,40}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json_body(body: bytes, content_type: str | None) -> Any:
    """The JSON value of ``body`` (a dict or a list), or an :class:`AuthError`."""
    media, _, params = (content_type or "").partition(";")
    is_json = media.strip().lower() == "application/json"
    if not body:
        # No body at all is `{}` (a bare `curl -X POST` with a cookie); an empty HTML form
        # post still names its type, and is refused like any other non-JSON body.
        return {} if content_type is None or is_json else invalid_payload(NOT_JSON)
    if not is_json:
        return invalid_payload(NOT_JSON)
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
            if charset not in ("utf-8", "utf8"):
                shown = charset.upper() if _CHARSET.fullmatch(charset) else "?"
                return invalid_payload(f'unsupported charset "{shown}"')
    if len(body) > MAX_PAYLOAD_BYTES:
        return invalid_payload(TOO_LARGE)
    # Node decodes with replacement characters and drops a BOM; so do we.
    text = body.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    stripped = text.lstrip(_BLANK)
    if not stripped or stripped[0] not in "{[":
        position = len(text) - len(stripped)
        return invalid_payload(f"Unexpected token in JSON at position {position}")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        msg, pos = exc.msg, exc.pos
        legacy = _TRAILING_COMMA.get(msg)
        if legacy is not None:
            # Python 3.13 names the trailing comma; earlier versions name the token after it.
            # One answer whatever the Python: the earlier one.
            msg, pos = legacy, len(text) - len(text[pos + 1 :].lstrip(" \t\n\r"))
        return invalid_payload(f"{msg} in JSON at position {pos}")
    except RecursionError:
        return invalid_payload("JSON nested too deeply")
    except ValueError:  # NaN/Infinity, integers beyond Python's digit limit
        return invalid_payload("Unexpected token in JSON")


#: Python 3.13's messages for a trailing comma, and what earlier versions said instead.
_TRAILING_COMMA = {
    "Illegal trailing comma before end of object": (
        "Expecting property name enclosed in double quotes"
    ),
    "Illegal trailing comma before end of array": "Expecting value",
}


def is_truthy(value: Any) -> bool:
    """JavaScript truthiness of a JSON value (``[]`` and ``{}`` are truthy there)."""
    if isinstance(value, (list, dict)):
        return True
    return bool(value)


# -- e-mail -----------------------------------------------------------------------------------

_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_TLD = re.compile(r"[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}")


def _unicode_ok(ch: str) -> bool:
    # Joi allows Unicode in addresses; it never allows controls, spaces or lone surrogates.
    return ord(ch) > 0x7F and ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF


def is_email(value: str) -> bool:
    """Joi's default ``string().email()``, approximated without network or the IANA list.

    ``local@domain``: one ``@``; a dot-separated local part of RFC 5322 ``atext`` (or
    printable non-ASCII) of at most 64 bytes; a domain of at least two labels of letters,
    digits and inner hyphens (or non-ASCII), each at most 63 characters, whose last label is
    alphabetic with at least two letters (or punycode ``xn--``); at most 254 bytes in all.
    Joi additionally checks the top-level domain against IANA's list, so ``a@b.zz`` passes
    here and fails there; both refuse ``a@b``, ``x@localhost`` and ``notanemail``.
    """
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    if size > 254 or value.count("@") != 1:
        return False
    local, _, domain = value.partition("@")
    if not local or len(local.encode("utf-8")) > 64:
        return False
    for atom in local.split("."):
        if not atom or not all(ch in _ATEXT or _unicode_ok(ch) for ch in atom):
            return False
    labels = domain.split(".")
    if len(labels) < 2 or len(domain) > 253:
        return False
    for label in labels[:-1]:
        if not label or len(label) > 63:
            return False
        if label.isascii():
            if not _LABEL.fullmatch(label):
                return False
        elif not all(ch.isalnum() or ch == "-" or _unicode_ok(ch) for ch in label) or (
            label[0] == "-" or label[-1] == "-"
        ):
            return False
    return _TLD.fullmatch(labels[-1]) is not None


# -- login ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginPayload:
    """A login body that passed validation; ``mode`` defaults to ``json`` (Directus's REST
    default for login)."""

    email: str
    password: str
    mode: str = "json"
    otp: str | None = None

    def __repr__(self) -> str:
        return f"LoginPayload(mode={self.mode!r}, <redacted>)"


_MISSING = object()


def _string(data: dict[str, Any], key: str, required: bool) -> str | AuthError | None:
    value = data.get(key, _MISSING)
    if value is _MISSING:
        return invalid_payload(f'"{key}" is required') if required else None
    if not isinstance(value, str):
        return invalid_payload(f'"{key}" must be a string')
    if value == "":
        return invalid_payload(f'"{key}" is not allowed to be empty')
    return value


def validate_login(data: Any) -> LoginPayload | AuthError:
    """Directus's login schema, with Joi's messages."""
    return _validate(data, "email")


def validate_identifier_login(data: Any) -> LoginPayload | AuthError:
    """Directus's LDAP login schema ``{identifier: string().required(), password:
    string().required(), mode, otp}``, with Joi's messages; the identifier is returned as
    ``email``."""
    return _validate(data, "identifier")


def _validate(data: Any, key: str) -> LoginPayload | AuthError:
    if not isinstance(data, dict):
        return invalid_payload('"value" must be of type object')
    name = _string(data, key, required=True)
    if isinstance(name, AuthError):
        return name
    assert name is not None
    if key == "email" and not is_email(name):
        return invalid_payload('"email" must be a valid email')
    password = _string(data, "password", required=True)
    if isinstance(password, AuthError):
        return password
    assert password is not None
    mode = data.get("mode", _MISSING)
    if mode is not _MISSING and (not isinstance(mode, str) or mode not in MODES):
        return invalid_payload(f'"mode" must be one of [{", ".join(MODES)}]')
    otp = _string(data, "otp", required=False)
    if isinstance(otp, AuthError):
        return otp
    return LoginPayload(name, password, mode if isinstance(mode, str) else "json", otp)
