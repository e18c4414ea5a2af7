"""Redaction of tokens in URLs, query strings, headers, cookies and free log text.

Every function here is pure and cheap when there is nothing to hide: the text is searched
once for the names (and ``%``, which could spell one) before any parsing happens.

What is hidden, with Directus's placeholder ``--redacted--``:

* the value of every query parameter whose name, percent-decoded and compared without regard
  to case or a ``[...]`` suffix, is exactly a secret name: the widely used credential names of
  :data:`DEFAULT_SECRET_NAMES` (``access_token``, ``refresh_token``, ``code``, ``password``,
  ``client_secret``, ``otp``...), whatever ``TOKENGUARD_QUERY_PARAMS`` says, plus the configured
  token parameters, ``TOKENGUARD_REDACT_NAMES`` and the two cookie names (``code`` is hidden in
  ``code=...`` but not in ``barcode=...``); also such a pair inside another
  parameter's percent-encoded value (``next=%2F%3Faccess_token%3D...``) and in a fragment;
* the value of the session and refresh cookies (and of any named cookie) in ``Cookie`` and
  ``Set-Cookie``;
* the credentials of ``Authorization`` and ``Proxy-Authorization`` (the scheme is kept);
* a password in a URL (``redis://:secret@host``).

Where the servers that read a token would disagree on where its value ends, the longer
reading is hidden: ``access_token=a;b=c`` is one parameter to Starlette and Werkzeug, so
``;b=c`` goes too. Everything else is left byte for byte as it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, TypeVar, overload
from urllib.parse import unquote_plus

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "DEFAULT_COOKIE_NAMES",
    "DEFAULT_PARAM_NAMES",
    "DEFAULT_SECRET_NAMES",
    "PLACEHOLDER",
    "Redactor",
    "default_redactor",
    "redact_cookie",
    "redact_headers",
    "redact_query",
    "redact_text",
    "redact_url",
    "redactor_for",
    "remove_query_params",
    "settings_cookie_names",
    "settings_param_names",
]

#: What Directus writes in place of a secret.
PLACEHOLDER = "--redacted--"

#: Credential names hidden by every redactor, whatever the configured token parameters are:
#: OAuth 2 / OIDC (tokens, the authorization ``code`` of a callback, client secrets), API keys,
#: passwords and one-time passwords (Directus's ``otp``).
DEFAULT_SECRET_NAMES: tuple[str, ...] = (
    "access_token",
    "refresh_token",
    "id_token",
    "jwt",
    "token",
    "code",
    "password",
    "secret",
    "api_key",
    "apikey",
    "client_secret",
    "otp",
)
#: The parameter names of :func:`default_redactor` (kept for callers of the old name).
DEFAULT_PARAM_NAMES: tuple[str, ...] = DEFAULT_SECRET_NAMES
#: Names hidden only when they are the whole name: ``status_code``, ``exit_code`` and the
#: ``X-Error-Code`` header are not secrets, as ``X-Api-Token`` or ``new_password`` are.
EXACT_ONLY_NAMES = frozenset({"code"})
DEFAULT_COOKIE_NAMES: tuple[str, ...] = ("directus_session_token", "directus_refresh_token")

S = TypeVar("S", str, bytes)

# Characters a query key is made of in a log line (RFC 3986 unreserved, plus "%" and "+",
# which decode into anything). A match starts only where a run of key characters starts, so
# that a long run with no "=" after it is scanned once, not once per position.
_KEY_RE = re.compile(r"(?<![A-Za-z0-9_.~%+\-])[A-Za-z0-9_.~%+\-]+(?:\[[^\]\s=&]*\])*=")
# A quote ends a value only where it plainly closes a string (a repr, JSON, a quoted log
# field); a quote inside a value is taken as part of the secret.
_CLOSE = r"""["'](?=[\s,;:)\]}>&]|$)"""
_QUERY_VALUE_RE = re.compile(rf"""(?:(?!{_CLOSE})[^ \t\r\n\f\v&#])*""")
_COOKIE_VALUE_RE = re.compile(rf"""(?:(?!{_CLOSE})[^ \t\r\n\f\v&#;,])*""")
# Credentials after a scheme word: anything up to ASCII whitespace or a closing quote.
_BEARER_RE = re.compile(rf"""(?i)(bearer)([ \t]+)((?:(?!{_CLOSE})[^ \t\r\n\f\v])+)""")
_ASCII_SPACE = " \t\r\n\f\v"
# A password in a URL's user information ("redis://:pw@host", "https://u:pw@host").
# (Anchored at the start of a scheme and with no ":" in the password, so a long run without
# "@" is scanned once.)
_USERINFO_RE = re.compile(
    r"(?i)(?<![a-z0-9+.\-])([a-z][a-z0-9+.\-]*://[^/\s:@'\"]*:)([^/\s:@'\"]+)(@)"
)
# "Authorization: ..." as a header line (a dump of headers in an error message).
_AUTH_LINE_RE = re.compile(r"(?im)^([ \t]*(?:proxy-)?authorization[ \t]*:[ \t]*)([^\r\n]+)$")
# A quoted key and a quoted value: JSON, Python reprs of dicts, of ASGI header pairs and of
# WSGI environs ("'HTTP_AUTHORIZATION': 'Bearer ...'", "(b'cookie', b'...')").
_QUOTED_PAIR = r"""(["'])({keys})\1\s*[:=,]\s*b?(["'])((?:\\.|(?!\3).)*)\3"""
_AUTH_KEYS = r"(?:http_)?(?:proxy[-_])?authorization"
_COOKIE_KEYS = r"(?:http_)?(?:set-)?cookie"


def _decode_key(key: str) -> str:
    if "%" in key or "+" in key:
        key = unquote_plus(key, errors="replace")
    return key


_SEGMENT_RE = re.compile(r"[?&;#/=\s]")


def _last_segment(key: str) -> str:
    return _SEGMENT_RE.split(key)[-1]


def _base(key: str) -> str:
    """A decoded key, lower-cased, without a ``[...]`` suffix (``qs`` reads it as the same)."""
    return key.partition("[")[0].lower()


def _keep_scheme(value: str) -> str:
    """``Bearer abc`` -> ``Bearer --redacted--``; a value with no scheme goes entirely."""
    stripped = value.lstrip(_ASCII_SPACE)
    scheme, sep, rest = stripped.partition(" ")
    if sep and scheme.isalpha() and rest.strip(_ASCII_SPACE):
        return value[: len(value) - len(stripped)] + scheme + " " + PLACEHOLDER
    return PLACEHOLDER if value else value


def _via_text(value: bytes, redact: Callable[[str], str]) -> bytes:
    # Bytes are redacted as latin-1 text, a lossless mapping of every byte, and given back as
    # bytes; the very same object comes back when nothing needed hiding.
    text = value.decode("latin-1")
    done = redact(text)
    return value if done is text else done.encode("latin-1")


class Redactor:
    """Redaction for one set of names; build it once (see :func:`redactor_for`).

    ``params`` are query/body parameter names whose values run to the next ``&``;
    ``cookies`` are cookie names whose values run to the next ``;``. Every name is redacted
    in every context; the two kinds differ only where a value ends in free text.
    """

    __slots__ = (
        "_cookie_names",
        "_encoded_re",
        "_names",
        "_needles",
        "_line_re",
        "_probe",
        "_quoted_bare_re",
        "_suffixes",
        "_quoted_re",
        "cookies",
        "params",
    )

    def __init__(
        self,
        params: Iterable[str] = DEFAULT_PARAM_NAMES,
        cookies: Iterable[str] = DEFAULT_COOKIE_NAMES,
    ) -> None:
        self.params = tuple(dict.fromkeys(p for p in params if p))
        self.cookies = tuple(dict.fromkeys(c for c in cookies if c))
        self._names = frozenset(n.lower() for n in (*self.params, *self.cookies))
        self._cookie_names = frozenset(c.lower() for c in self.cookies) - frozenset(
            p.lower() for p in self.params
        )
        dashed = {n.replace("_", "-") for n in self._names} - self._names
        self._needles = (*sorted(self._names), *sorted(dashed), "bearer", "authorization")
        # The cheap pre-check, run on the lower-cased text of every log record: a needle only
        # counts as a whole word ("code" in "?code=", not in "decode" or "barcode"), or after a
        # percent escape ("%3Fcode%3D"). Every later step needs such an occurrence (or a "%"
        # and an "=", or a URL password), so text without one is given back untouched.
        needles = "|".join(re.escape(n) for n in sorted(self._needles, key=len, reverse=True))
        # (The word bounds are ASCII-only, as the key characters of _KEY_RE are: "écode="
        # is still a "code=" to it.) It runs only once a plain substring test found a needle.
        self._probe = re.compile(
            rf"(?i)(?:(?-i:(?<![a-z0-9]))|(?<=%[0-9a-f]{{2}}))(?:{needles})(?-i:(?![a-z0-9]))"
        )
        # Header and line keys that end in a name ("X-Access-Token", "new_password") carry it.
        self._suffixes = tuple("_" + n for n in sorted(self._names - EXACT_ONLY_NAMES))
        alternatives = "|".join(re.escape(n) for n in sorted(self._names, key=len, reverse=True))
        # A name=value pair inside another value, percent-encoded once.
        self._encoded_re = re.compile(
            rf"(?i)(?:(?<=%3f)|(?<=%26)|(?<=%3b)|(?<=%23)|(?<![A-Za-z0-9_.~%+\-]))"
            rf"(?:{alternatives})(?:%5b(?:(?!%5d)[^&\s])*%5d)*%3d"
            rf"((?:(?!%26|%23|{_CLOSE})[^ \t\r\n\f\v&#])*)"
        )
        self._quoted_re = re.compile(
            "(?i)" + _QUOTED_PAIR.format(keys=f"{alternatives}|{_AUTH_KEYS}|{_COOKIE_KEYS}")
        )
        # A quoted key and a bare scalar: JSON numbers and literals ('"otp": 123456').
        self._quoted_bare_re = re.compile(
            rf"""(?i)(["'])({alternatives})\1(\s*:\s*)(-?[A-Za-z0-9_.+\-]+)"""
        )

        def flex(names: Iterable[str]) -> str:
            ordered = sorted(names, key=len, reverse=True)
            return "|".join(re.escape(n).replace("_", "[-_]") for n in ordered) or "(?!)"

        # "X-Access-Token: ..." in a dump of headers, "refresh_token: ..." in YAML; a name
        # of EXACT_ONLY_NAMES only as the whole key ("code: ..." but not "status_code: 200").
        exact = flex(self._names & EXACT_ONLY_NAMES)
        self._line_re = re.compile(
            rf"(?im)^([ \t]*(?:(?:[\w-]*[-_])?(?:{flex(self._names - EXACT_ONLY_NAMES)})"
            rf"|(?:{exact}))[ \t]*:[ \t]*)([^\r\n]+)$"
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        """The names a deployment must never log: :data:`DEFAULT_SECRET_NAMES`, the token
        parameters, ``TOKENGUARD_REDACT_NAMES`` and both cookies."""
        return redactor_for(settings_param_names(settings), settings_cookie_names(settings))

    @property
    def names(self) -> frozenset[str]:
        """Every redacted name, lower-cased."""
        return self._names

    def _is_name(self, raw_key: str) -> bool:
        key = _decode_key(raw_key)
        if _base(key) in self._names:
            return True
        # "/x%3Faccess_token=..." decodes to a path whose last piece is the name: some
        # servers will read it as such once they decode the surrounding value.
        return key is not raw_key and _base(_last_segment(key)) in self._names

    def _maybe(self, text: str) -> bool:
        """False only when no name can occur in ``text`` (the fast path)."""
        # A percent-encoded name is only a name with an "=" after it.
        if ("%" in text and "=" in text) or ("@" in text and "://" in text):
            return True
        return self._mentions(text)

    def _mentions(self, text: str) -> bool:
        """Whether a name itself, unencoded, occurs in ``text`` as a word."""
        low = text.lower()
        for needle in self._needles:  # a plain loop: this runs for every log record
            if needle in low:
                # Only then the word-bounded search ("decode" and "barcode" hold "code").
                return self._probe.search(low) is not None
        return False

    # -- query strings and URLs ---------------------------------------------------------

    def query(self, query: S) -> S:
        """A query string (or ``application/x-www-form-urlencoded`` body) with every
        sensitive value replaced. Separators, order, encoding and empty parts are kept."""
        if isinstance(query, bytes):
            return _via_text(query, self.query)
        if not query or not self._maybe(query):
            return query
        parts = query.split("&")
        changed = False
        for i, part in enumerate(parts):
            new = self._query_part(part)
            if new is not part:
                parts[i] = new
                changed = True
        return "&".join(parts) if changed else query

    def _query_part(self, part: str) -> str:
        key, sep, _ = part.partition("=")
        if sep and self._is_name(key):
            # Servers that do not split on ";" read all of this as the token.
            return key + "=" + PLACEHOLDER
        if ";" in part:
            # Servers that do split on ";" see the later pairs as parameters of their own.
            pieces = part.split(";")
            changed = False
            for j in range(1, len(pieces)):
                k, s, _ = pieces[j].partition("=")
                if s and self._is_name(k):
                    pieces[j] = k + "=" + PLACEHOLDER
                    changed = True
            if changed:
                return self._nested(";".join(pieces))
        return self._nested(part)

    def _nested(self, part: str) -> str:
        if "%3" not in part:
            return part
        low = part.lower()
        if "%3d" not in low or not any(n in low for n in self._names):
            return part
        return self._encoded_re.sub(_encoded_sub, part)

    def url(self, url: S) -> S:
        """A URL (absolute, or a request target such as ``/path?query``) with the query and
        fragment redacted; scheme, host and path are left as they were."""
        if isinstance(url, bytes):
            return _via_text(url, self.url)
        if not url or not self._maybe(url):
            return url
        head, hash_, fragment = url.partition("#")
        path, q, query = head.partition("?")
        new_path = _USERINFO_RE.sub(_userinfo_sub, path) if "@" in path else path
        new_query = self.query(query) if q else query
        new_fragment = self.query(fragment) if hash_ else fragment
        if new_path == path and new_query is query and new_fragment is fragment:
            return url
        return new_path + q + new_query + hash_ + new_fragment

    # -- cookies and headers ------------------------------------------------------------

    def cookie(self, cookie: S) -> S:
        """A ``Cookie`` (or ``Set-Cookie``) header value with the named cookies' values
        replaced. A named cookie's value ends at ``;``; names are also recognised after a
        ``,`` (the old multi-cookie separator)."""
        if isinstance(cookie, bytes):
            return _via_text(cookie, self.cookie)
        if not cookie or not self._maybe(cookie):
            return cookie
        parts = cookie.split(";")
        changed = False
        for i, part in enumerate(parts):
            for j, piece in enumerate(pieces := part.split(",")):
                key, sep, _ = piece.partition("=")
                if sep and self._is_name(key.strip(_ASCII_SPACE)):
                    parts[i] = ",".join(pieces[:j]) + ("," if j else "") + key + "=" + PLACEHOLDER
                    changed = True
                    break
        return ";".join(parts) if changed else cookie

    def header(self, name: str, value: S) -> S:
        """One header's value, redacted according to its name."""
        if isinstance(value, bytes):
            return _via_text(value, lambda t: self.header(name, t))
        lname = name.lower().replace("_", "-")
        if lname.startswith("http-"):
            lname = lname[5:]
        if lname in ("authorization", "proxy-authorization"):
            return _keep_scheme(value) if value else value
        if lname in ("cookie", "set-cookie"):
            return self.cookie(value)
        flat = lname.replace("-", "_")
        if flat in self._names or flat.endswith(self._suffixes):
            # e.g. "X-Access-Token": the header itself carries a secret.
            return PLACEHOLDER if value else value
        return self.text(value)

    @overload
    def headers(self, headers: Mapping[str, str]) -> dict[str, str]: ...
    @overload
    def headers(self, headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]: ...
    @overload
    def headers(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]: ...
    def headers(self, headers: object) -> object:
        """A header map (a mapping, or ASGI/WSGI-style ``(name, value)`` pairs of ``str`` or
        ``bytes``) with credentials, named cookies and tokens in URLs hidden."""
        if isinstance(headers, Mapping):
            return {k: self.header(str(k), v) for k, v in headers.items()}
        out: list[tuple[object, object]] = []
        for name, value in headers:  # type: ignore[attr-defined]
            key = name.decode("latin-1") if isinstance(name, bytes) else str(name)
            out.append((name, self.header(key, value)))
        return out

    # -- free text ----------------------------------------------------------------------

    def text(self, text: S) -> S:
        """Any text (a log message, a traceback, a repr): every ``name=value``,
        quoted ``"name": "value"`` pair, ``Bearer`` credential and ``Authorization:`` line
        that could carry a secret is hidden."""
        if isinstance(text, bytes):
            return _via_text(text, self.text)
        if not text or not self._maybe(text):
            return text
        out = self._pairs(text)
        low = out.lower()
        if "%3d" in low:
            out = self._encoded_re.sub(_encoded_sub, out)
        if "'" in out or '"' in out:
            out = self._quoted_re.sub(self._quoted_sub, out)
            out = self._quoted_bare_re.sub(_bare_sub, out)
        if "bearer" in low:
            out = _BEARER_RE.sub(_bearer_sub, out)
        if "authorization" in low:
            out = _AUTH_LINE_RE.sub(_auth_line_sub, out)
        if ":" in out:
            out = self._line_re.sub(_line_sub, out)
        if "@" in out and "://" in out:
            out = _USERINFO_RE.sub(_userinfo_sub, out)
        return text if out == text else out

    def _pairs(self, text: str) -> str:
        """Every ``key=value`` whose key is a name, wherever it stands."""
        if "=" not in text:
            return text
        chunks: list[str] = []
        last = 0
        for m in _KEY_RE.finditer(text):
            start, end = m.span()
            if start < last:
                continue
            key = m.group().rstrip("=").partition("[")[0]
            if not self._is_name(key):
                continue
            value_re = (
                _COOKIE_VALUE_RE
                if _last_segment(_decode_key(key)).lower() in self._cookie_names
                else _QUERY_VALUE_RE
            )
            vm = value_re.match(text, end)
            stop = vm.end() if vm else end
            chunks.append(text[last:end])
            chunks.append(PLACEHOLDER)
            last = stop
        if not chunks:
            return text
        chunks.append(text[last:])
        return "".join(chunks)

    def _quoted_sub(self, m: re.Match[str]) -> str:
        key = m.group(2).lower()
        value = m.group(4)
        if "authorization" in key:
            new = _keep_scheme(value)
        elif key.endswith("cookie") and key not in self._names:
            new = self.cookie(value)
        else:
            new = PLACEHOLDER if value else value
        if new == value:
            return m.group()
        start = m.start(4) - m.start()
        return m.group()[:start] + new + m.group()[start + len(value) :]


def _encoded_sub(m: re.Match[str]) -> str:
    start = m.start(1) - m.start()
    return m.group()[:start] + PLACEHOLDER


def _bare_sub(m: re.Match[str]) -> str:
    # Quoted in the quote style of the key, so that JSON stays JSON.
    q = m.group(1)
    return q + m.group(2) + q + m.group(3) + q + PLACEHOLDER + q


def _bearer_sub(m: re.Match[str]) -> str:
    if m.group(3) == PLACEHOLDER:
        return m.group()
    return m.group(1) + m.group(2) + PLACEHOLDER


def _line_sub(m: re.Match[str]) -> str:
    return m.group(1) + PLACEHOLDER


def _userinfo_sub(m: re.Match[str]) -> str:
    return m.group(1) + PLACEHOLDER + m.group(3)


def _auth_line_sub(m: re.Match[str]) -> str:
    return m.group(1) + _keep_scheme(m.group(2))


@lru_cache(maxsize=64)
def _cached(params: tuple[str, ...], cookies: tuple[str, ...]) -> Redactor:
    return Redactor(params, cookies)


def redactor_for(params: Iterable[str], cookies: Iterable[str] = ()) -> Redactor:
    """A (cached) :class:`Redactor` for these parameter and cookie names."""
    return _cached(tuple(params), tuple(cookies))


def settings_param_names(settings: Settings) -> tuple[str, ...]:
    """Every parameter name ``settings`` redacts: :data:`DEFAULT_SECRET_NAMES`, the token
    parameters and ``TOKENGUARD_REDACT_NAMES``."""
    return tuple(
        dict.fromkeys((*DEFAULT_SECRET_NAMES, *settings.query_params, *settings.redact_names))
    )


def settings_cookie_names(settings: Settings) -> tuple[str, ...]:
    """The two cookie names of ``settings``."""
    return (settings.session_cookie_name, settings.refresh_cookie_name)


def default_redactor() -> Redactor:
    """The redactor for the default names (:data:`DEFAULT_SECRET_NAMES`, the
    ``directus_session_token`` and ``directus_refresh_token`` cookies)."""
    return _cached(DEFAULT_PARAM_NAMES, DEFAULT_COOKIE_NAMES)


def redact_url(url: S, redactor: Redactor | None = None) -> S:
    """``url`` with token values in its query and fragment replaced by ``--redacted--``."""
    return (redactor or default_redactor()).url(url)


def redact_query(query: S, redactor: Redactor | None = None) -> S:
    """A query string with token values replaced by ``--redacted--``."""
    return (redactor or default_redactor()).query(query)


def redact_cookie(cookie: S, redactor: Redactor | None = None) -> S:
    """A ``Cookie``/``Set-Cookie`` value with the session and refresh cookies hidden."""
    return (redactor or default_redactor()).cookie(cookie)


def redact_headers(headers: Mapping[str, str], redactor: Redactor | None = None) -> dict[str, str]:
    """A header mapping with credentials, token cookies and tokens in URLs hidden."""
    return (redactor or default_redactor()).headers(headers)


def redact_text(text: S, redactor: Redactor | None = None) -> S:
    """Free text (a log line, a traceback) with anything token-shaped hidden."""
    return (redactor or default_redactor()).text(text)


def remove_query_params(query_string: str, names: Iterable[str]) -> str:
    """``query_string`` without the parameters called ``names`` (as the extractor reads
    names: percent-decoded, exact, with or without a ``[...]`` suffix).

    Returns the very same object when nothing was removed, so callers can test ``is``.
    """
    if not query_string:
        return query_string
    wanted = names if isinstance(names, (frozenset, set)) else frozenset(names)
    if "%" not in query_string and not any(n in query_string for n in wanted):
        return query_string
    kept: list[str] = []
    removed = False
    for part in query_string.split("&"):
        key = _decode_key(part.partition("=")[0])
        if key in wanted or ("[" in key and key.partition("[")[0] in wanted):
            removed = True
            continue
        kept.append(part)
    return "&".join(kept) if removed else query_string
