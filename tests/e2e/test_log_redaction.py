"""No token reaches a log: real uvicorn, gunicorn and Werkzeug servers on 127.0.0.1, with their
default access logging (and gunicorn's access log, which is off by default, switched on with
every URL and header field), get requests carrying tokens in every form; everything the
processes wrote to stdout, stderr and their log files is then searched for every form of
every token.

Failures never print a token: a leak is reported with the token replaced by its label.
"""

from __future__ import annotations

import base64
import importlib.util
import re
import secrets
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest

from tests.helpers.servers import Server, serve
from tests.helpers.tokens import OTHER_SECRET, SECRET, mint
from tokenguard.redact import PLACEHOLDER

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
        "TOKENGUARD_QUERY_PARAMS": "access_token,jwt",
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
        get(f"/ok?%61ccess_token={VALID}&z=%7e", 200)
        get(f"/ok?access_token={_hex_lower(quote(ODD, safe=''))}", 401)
        get(f"/ok?access_token={BAD}", 403)
        get(f"/ok?access_token={EXPIRED}", 401)
        get(f"/ok?access_token={UNKNOWN}", 401)
        get(f"/ok?access_token={quote(ODD, safe='')}", 401)
        get(f"/ok?access_token={quote_plus(ODD)}&x=1", 401)
        get(f"/ok?access_token={VALID}&access_token={UNKNOWN}", 400)
        get(f"/ok?access_token%5B%5D={VALID}", 400)
        get(f"/ok?jwt={VALID}", 400, headers={"Authorization": f"Bearer {STATIC}"})
        get("/ok", 403, headers={"Authorization": f"Bearer {BAD}"})
        get("/ok", 401, headers={"Authorization": f"bearer {UNKNOWN}"})
        get("/ok", 200, headers={"Authorization": f"Basic {BASIC}"})
        get("/ok", 401, headers={"Cookie": f"theme=dark; directus_session_token={SESSION}; directus_refresh_token={REFRESH}"})
        get("/ok", 200, headers={"Referer": f"{url}/previous?x=1&access_token={VALID}", "X-Refresh": REFRESH})
        get(f"/boom?access_token={VALID}", 500)
        get("/boom", 500, headers={"Authorization": f"Bearer {STATIC}", "Cookie": f"directus_refresh_token={REFRESH}"})
        get(f"/boom?jwt={quote(STATIC, safe='')}", 500, headers={"Cookie": f"directus_session_token={EXPIRED}"})
        get(f"/boom?access_token={BAD}", 403)
        r = client.post("/auth/refresh", json={"refresh_token": REFRESH, "mode": "json"})
        assert r.status_code in (400, 401, 404, 405)
    port = run.server.port
    v = VALID.encode()
    odd = quote(ODD, safe="").encode()
    raw_cases: list[tuple[str, bytes, bytes, tuple[int, ...]]] = [
        ("semicolons", b"/ok?a=1;access_token=" + v + b";b=2", b"", (200, 400)),
        ("not utf-8", b"/ok?x=%FF\xff\xfe&access_token=" + v, b"", (0, 200, 400)),
        ("fragment", b"/ok?access_token=" + v + b"#frag", b"", (0, 200, 400)),
        ("crash, odd token", b"/boom?access_token=" + odd + b"&x=\xe9", b"", (0, 400, 401)),
        # WSGI servers join repeated headers ("Bearer a, Bearer b"): no Bearer token then.
        ("two bearers", b"/ok", b"Authorization: Bearer " + v + b"\r\nAuthorization: Bearer " + v + b"\r\n", (200, 400)),
        ("space in target", b"/ok?access_token=" + v + b" junk", b"", (0, 400)),
        ("bad request line", b"/ok?access_token=" + v + b"\x00", b"", (0, 400, 401, 403)),
    ]
    for label, target, headers, allowed in raw_cases:
        status = raw_request(port, target, headers)
        assert status in allowed, f"{label}: {status}"


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


def test_credentials_in_the_crash_message_are_redacted(run: Run) -> None:
    text = "\n".join(run.outputs().values())
    assert f"authorization='Bearer {PLACEHOLDER}'" in text
    assert f"directus_refresh_token={PLACEHOLDER}" in text
