"""No token reaches a log: real uvicorn, gunicorn and Werkzeug servers on 127.0.0.1, with their
default access logging (and gunicorn's access log, which is off by default, switched on with
every URL and header field), get requests carrying tokens in every form; everything the
processes wrote to stdout, stderr and their log files is then searched for every form of
every token.

The query-string shapes are sent under every default secret name (access_token, code, password,
client_secret, otp...), not only under the token parameters the app reads: those values must be
hidden by default, whatever TOKENGUARD_QUERY_PARAMS says.

Failures never print a token: a leak is reported with the token replaced by its label.
"""

from __future__ import annotations

import base64
import importlib.util
import re
import secrets
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest

from tests.helpers.servers import Server, serve
from tests.helpers.tokens import OTHER_SECRET, SECRET, mint
from tokenguard.logs.redact import DEFAULT_SECRET_NAMES, PLACEHOLDER

pytestmark = pytest.mark.e2e


def _core() -> str:
    return secrets.token_urlsafe(18)  # 24 characters nobody else will ever write


VALID = mint()
BAD = mint(secret=OTHER_SECRET)
EXPIRED = mint(exp=1000, iat=900)
SESSION = mint(session=secrets.token_urlsafe(48))
STATIC = "static-" + _core()
UNKNOWN = "unknown-" + _core()
REFRESH = secrets.token_urlsafe(48)
ODD_CORE = _core()
ODD = f"odd;'é {ODD_CORE}"  # a static token an admin typed: needs encoding everywhere
BASIC_PASSWORD = "pw-" + _core()
BASIC = base64.b64encode(f"someone:{BASIC_PASSWORD}".encode()).decode()

#: The app's token parameters (TOKENGUARD_QUERY_PARAMS): the only names it reads a token from.
TOKEN_PARAMS = ("access_token", "jwt")
#: A name the deployment adds (TOKENGUARD_REDACT_NAMES).
EXTRA_NAMES = ("session_key",)
#: Every name the query shapes are sent under: the defaults and the configured ones.
NAMES = tuple(dict.fromkeys((*DEFAULT_SECRET_NAMES, *TOKEN_PARAMS, *EXTRA_NAMES)))


@dataclass(frozen=True)
class Values:
    """The values one name is sent with (distinct per name, so a leak says which name)."""

    valid: str
    bad: str
    expired: str
    unknown: str
    odd: str
    odd_core: str
    unknown_core: str


def _values(name: str) -> Values:
    if name == "access_token":
        return Values(VALID, BAD, EXPIRED, UNKNOWN, ODD, ODD_CORE, UNKNOWN.split("-", 1)[1])
    odd_core, unknown_core = _core(), _core()
    return Values(
        valid=mint(jti=_core()),
        bad=mint(secret=OTHER_SECRET, jti=_core()),
        expired=mint(exp=1000, iat=900, jti=_core()),
        unknown="unknown-" + unknown_core,
        odd=f"odd;'é {odd_core}",
        odd_core=odd_core,
        unknown_core=unknown_core,
    )


VALUES = {name: _values(name) for name in NAMES}

TOKENS = {
    "VALID": VALID,
    "BAD": BAD,
    "EXPIRED": EXPIRED,
    "SESSION": SESSION,
    "STATIC": STATIC,
    "UNKNOWN": UNKNOWN,
    "REFRESH": REFRESH,
    "ODD": ODD,
    "BASIC_PASSWORD": BASIC_PASSWORD,
    "BASIC": BASIC,
}
for _name, _v in VALUES.items():
    if _name != "access_token":
        TOKENS.update(
            {f"{_name}:VALID": _v.valid, f"{_name}:BAD": _v.bad, f"{_name}:EXPIRED": _v.expired,
             f"{_name}:UNKNOWN": _v.unknown, f"{_name}:ODD": _v.odd}
        )


def _hex_lower(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


def _forms() -> dict[str, str]:
    """label -> text that must appear in no log: every spelling and every random piece."""
    forms: dict[str, str] = {}
    for label, token in TOKENS.items():
        spellings = {
            "raw": token,
            "pct": quote(token, safe=""),
            "plus": quote_plus(token),
            "pct-lower": _hex_lower(quote(token, safe="")),
        }
        for how, text in spellings.items():
            forms[f"{label}/{how}"] = text
        for i, piece in enumerate(token.split(".")):
            if len(piece) >= 16 and token.count(".") == 2 and i:  # JWT payload and signature
                forms[f"{label}/jwt-part-{i}"] = piece
    forms["ODD/core"] = ODD_CORE
    for label in ("STATIC", "UNKNOWN"):
        forms[f"{label}/core"] = TOKENS[label].split("-", 1)[1]
    for name, v in VALUES.items():
        if name != "access_token":
            forms[f"{name}:ODD/core"] = v.odd_core
            forms[f"{name}:UNKNOWN/core"] = v.unknown_core
    return forms


FORMS = _forms()


def find_leaks(name: str, text: str) -> list[str]:
    leaks = []
    for label, form in FORMS.items():
        if form in text:
            line = next(ln for ln in text.splitlines() if form in ln)
            for other_label, other in sorted(FORMS.items(), key=lambda kv: -len(kv[1])):
                line = line.replace(other, f"<{other_label}>")
            leaks.append(f"{label} in {name}: {line[:300]}")
    return leaks


# --- servers ---------------------------------------------------------------------------------

GUNICORN_FORMAT = (
    '%(h)s "%(r)s" %(s)s U=%(U)s q=%(q)s auth=%({authorization}i)s cookie=%({cookie}i)s '
    'ref="%(f)s" env=%({query_string}e)s'
)


@dataclass
class Kind:
    argv: list[str]
    files: tuple[str, ...] = ()


KINDS = {
    "uvicorn": Kind([sys.executable, "-m", "uvicorn", "tests.e2e.apps.log_asgi_app:app", "--host", "127.0.0.1", "--port", "{port}"]),
    "uvicorn-trace": Kind(
        [sys.executable, "-m", "uvicorn", "tests.e2e.apps.log_asgi_app:app", "--host", "127.0.0.1", "--port", "{port}",
         "--log-level", "trace"]
    ),
    "gunicorn": Kind(
        [sys.executable, "-m", "gunicorn", "tests.e2e.apps.log_wsgi_app:app", "-b", "127.0.0.1:{port}", "-w", "1",
         "--access-logfile", "{dir}/access.log", "--error-logfile", "{dir}/error.log",
         "--access-logformat", GUNICORN_FORMAT],
        ("access.log", "error.log"),
    ),
    "gunicorn-stdout": Kind(
        [sys.executable, "-m", "gunicorn", "tests.e2e.apps.log_wsgi_app:app", "-b", "127.0.0.1:{port}", "-w", "1",
         "--access-logfile", "-"]
    ),
    "gunicorn-uvicorn-worker": Kind(
        [sys.executable, "-m", "gunicorn", "tests.e2e.apps.log_asgi_app:app", "-b", "127.0.0.1:{port}", "-w", "1",
         "-k", "uvicorn.workers.UvicornWorker", "--access-logfile", "{dir}/access.log", "--error-logfile", "-",
         "--access-logformat", GUNICORN_FORMAT],
        ("access.log",),
    ),
    "werkzeug": Kind([sys.executable, "-m", "tests.e2e.apps.log_wsgi_app", "{port}"]),
}


@dataclass
class Run:
    server: Server
    kind: str
    strip: bool
    directory: Path

    def outputs(self) -> dict[str, str]:
        out = {"stdout+stderr": self.server.output()}
        for name in KINDS[self.kind].files:
            path = self.directory / name
            out[name] = path.read_text(errors="replace") if path.exists() else ""
        return out


@pytest.fixture(
    scope="module",
    params=[(kind, strip) for kind in KINDS for strip in (True, False)],
    ids=lambda p: f"{p[0]}-strip-{'on' if p[1] else 'off'}",
)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    kind, strip = request.param
    if kind == "gunicorn-uvicorn-worker" and importlib.util.find_spec("uvicorn.workers") is None:
        pytest.skip("this uvicorn has no uvicorn.workers (it moved to the uvicorn-worker package)")
    directory = tmp_path_factory.mktemp(kind)
    argv = [a.replace("{dir}", str(directory)) for a in KINDS[kind].argv]
    env = {
        "SECRET": SECRET,
        "LOG_STATIC_TOKEN": STATIC,
        "TOKENGUARD_QUERY_PARAMS": ",".join(TOKEN_PARAMS),
        "TOKENGUARD_REDACT_NAMES": ",".join(EXTRA_NAMES),
        "TOKENGUARD_STRIP_QUERY_TOKEN": "true" if strip else "false",
        "TOKENGUARD_PUBLIC_ROLE": "public",
    }
    # Static tokens that fail are looked up by hash; a valid one is in the app's store.
    with serve(argv, env, directory, ready_path="/ok") as server:
        result = Run(server, kind, strip, directory)
        exercise(result)
        server.process.terminate()  # flush and close the log files before reading them
        server.process.wait(timeout=15)
        yield result


# --- the requests ----------------------------------------------------------------------------


def raw_request(port: int, target: bytes, headers: bytes = b"") -> int:
    """Send bytes httpx would refuse or normalise; the status (0 if the server hung up)."""
    __tracebackhide__ = True  # its arguments hold tokens
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + headers + b"\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else 0


def exercise(run: Run) -> None:
    url = run.server.url
    with httpx.Client(base_url=url, timeout=10, headers={"Connection": "close"}) as client:

        def get(target: str, status: int | tuple[int, ...], **kw: object) -> httpx.Response:
            __tracebackhide__ = True  # its arguments hold tokens
            r = client.get(target, **kw)  # type: ignore[arg-type]
            expected = status if isinstance(status, tuple) else (status,)
            assert r.status_code in expected, f"{target.split('?')[0]}: {r.status_code}"
            return r

        r = get(f"/ok?access_token={VALID}", 200)
        seen = r.json()
        assert seen["via"] == "jwt"
        assert (VALID in seen["query"]) is (not run.strip)
        r = get(f"/ok?a=1&jwt={quote(STATIC, safe='')}&b=2", 200)
        assert r.json()["via"] == "static"
        if run.strip:
            assert r.json()["query"] == "a=1&b=2"
            raw = r.json().get("raw_path") or r.json().get("raw_uri") or ""
            assert STATIC not in raw and "jwt" not in raw
        for name in NAMES:
            exercise_name(get, url, name)
        get(f"/ok?jwt={VALID}", 400, headers={"Authorization": f"Bearer {STATIC}"})
        get("/ok", 403, headers={"Authorization": f"Bearer {BAD}"})
        get("/ok", 401, headers={"Authorization": f"bearer {UNKNOWN}"})
        get("/ok", 200, headers={"Authorization": f"Basic {BASIC}"})
        get("/ok", 401, headers={"Cookie": f"theme=dark; directus_session_token={SESSION}; directus_refresh_token={REFRESH}"})
        get("/ok", 200, headers={"X-Refresh": REFRESH})
        get("/boom", 500, headers={"Authorization": f"Bearer {STATIC}", "Cookie": f"directus_refresh_token={REFRESH}"})
        get(f"/boom?jwt={quote(STATIC, safe='')}", 500, headers={"Cookie": f"directus_session_token={EXPIRED}"})
        r = client.post("/auth/refresh", json={"refresh_token": REFRESH, "mode": "json"})
        assert r.status_code in (400, 401, 404, 405)
    port = run.server.port
    v = VALID.encode()
    raw_cases: list[tuple[str, bytes, bytes, tuple[int, ...]]] = [
        # WSGI servers join repeated headers ("Bearer a, Bearer b"): no Bearer token then.
        ("two bearers", b"/ok", b"Authorization: Bearer " + v + b"\r\nAuthorization: Bearer " + v + b"\r\n", (200, 400)),
    ]
    for name in NAMES:
        n = name.encode()
        values = VALUES[name]
        valid = values.valid.encode()
        odd = quote(values.odd, safe="").encode()
        # A name the app does not read a token from leaves the request public.
        public = () if name in TOKEN_PARAMS else (200,)
        raw_cases += [
            ("semicolons", b"/ok?a=1;" + n + b"=" + valid + b";b=2", b"", (200, 400)),
            ("not utf-8", b"/ok?x=%FF\xff\xfe&" + n + b"=" + valid, b"", (0, 200, 400)),
            ("fragment", b"/ok?" + n + b"=" + valid + b"#frag", b"", (0, 200, 400)),
            ("crash, odd token", b"/boom?" + n + b"=" + odd + b"&x=\xe9", b"", (0, 400, 401, *((500,) if public else ()))),
            ("space in target", b"/ok?" + n + b"=" + valid + b" junk", b"", (0, 400)),
            ("bad request line", b"/ok?" + n + b"=" + valid + b"\x00", b"", (0, 400, 401, 403, *public)),
        ]
    for label, target, headers, allowed in raw_cases:
        status = raw_request(port, target, headers)
        assert status in allowed, f"{label}: {status}"


def exercise_name(get: Callable[..., httpx.Response], url: str, name: str) -> None:
    """Every query shape of a token under ``name``: the statuses are the token's when the app
    reads ``name`` (a token parameter), else those of a public request."""
    v = VALUES[name]
    reads = name in TOKEN_PARAMS

    def ok(status: int) -> int:
        return status if reads else 200

    pct_first = f"%{ord(name[0]):02x}{name[1:]}"
    get(f"/ok?{name}={v.valid}", 200)
    get(f"/ok?{pct_first}={v.valid}&z=%7e", 200)
    get(f"/ok?{name}={_hex_lower(quote(v.odd, safe=''))}", ok(401))
    get(f"/ok?{name}={v.bad}", ok(403))
    get(f"/ok?{name}={v.expired}", ok(401))
    get(f"/ok?{name}={v.unknown}", ok(401))
    get(f"/ok?{name}={quote(v.odd, safe='')}", ok(401))
    get(f"/ok?{name}={quote_plus(v.odd)}&x=1", ok(401))
    get(f"/ok?{name}={v.valid}&{name}={v.unknown}", ok(400))
    get(f"/ok?{name}%5B%5D={v.valid}", ok(400))
    get("/ok", 200, headers={"Referer": f"{url}/previous?x=1&{name}={v.valid}"})
    get(f"/boom?{name}={v.valid}", 500)
    get(f"/boom?{name}={v.bad}", 403 if reads else 500)


# --- the assertions --------------------------------------------------------------------------


def test_no_token_in_any_output(run: Run) -> None:
    leaks = [leak for name, text in run.outputs().items() for leak in find_leaks(name, text)]
    assert not leaks, "tokens reached the logs:\n" + "\n".join(leaks)


def test_the_logs_did_record_the_requests_and_the_crashes(run: Run) -> None:
    text = "\n".join(run.outputs().values())
    # The servers really logged these requests (so the absence of tokens means something).
    assert text.count("/ok") >= 15
    assert "RuntimeError: app failed on" in text
    assert "app saw" in text
    if not run.strip or run.kind in ("werkzeug", "uvicorn-trace"):
        # Werkzeug logs the request line as received; uvicorn's trace logs every scope;
        # without stripping every server logs the query as sent.
        assert PLACEHOLDER in text
    # The names the app does not read are never stripped: every server logged them, hidden.
    for name in NAMES:
        if name not in TOKEN_PARAMS:
            assert f"{name}={PLACEHOLDER}" in text, name


def test_credentials_in_the_crash_message_are_redacted(run: Run) -> None:
    text = "\n".join(run.outputs().values())
    assert f"authorization='Bearer {PLACEHOLDER}'" in text
    assert f"directus_refresh_token={PLACEHOLDER}" in text
