"""Coverage-guided fuzzing (atheris) of everything a client controls.

One harness, six targets chosen by the first input byte, so that one run covers them all:

0. token extraction (``Extractor``: Authorization header, query string, Cookie header)
1. cookie parsing (``parse_cookie``)
2. JWT parsing and verification of arbitrary strings (``TokenVerifier.verify``)
3. JWT verification of *validly signed* tokens with fuzzed header and payload JSON, so that
   the claim checks (not only the signature check) are explored
4. the ``/auth`` JSON bodies (``parse_json_body`` + ``validate_login``)
5. the whole WSGI middleware: a fuzzed method, path, headers and body through the guard, the
   CSRF check, the rate limiter and the ``/auth`` routes, with real (memory) stores

Invariants checked on every input (a violation is a crash, which atheris reports):

- no exception escapes;
- a verifier answer is ``None``, a dict of claims, or a Directus ``AuthError`` (401/403);
- the middleware never answers 5xx (memory stores cannot be unavailable), and every refusal
  is a well-formed Directus error body.

Run (see ``fuzz/README.md``)::

    python fuzz/fuzz_auth.py -runs=1000000 -max_len=4096 fuzz/corpus
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import atheris
import jwt
from argon2 import PasswordHasher

# Only our own code is instrumented: coverage of PyJWT or argon2 would steer nothing useful.
with atheris.instrument_imports(include=["tokenguard"]):
    from tokenguard.app import TokenGuard
    from tokenguard.auth.passwords import Passwords
    from tokenguard.config import Settings, token_policy
    from tokenguard.errors import AuthError
    from tokenguard.guard.extract import Extractor, parse_cookie
    from tokenguard.http.body import parse_json_body, validate_login
    from tokenguard.jose.tokens import TokenVerifier, hash_token
    from tokenguard.shells.wsgi import TokenGuardWSGI
    from tokenguard.stores.base import User
    from tokenguard.stores.memory import MemorySessionStore, MemoryUserStore

SECRET = "fuzz-Rk3vQ9pLm2Xz7Wn4Bc8Ht1Jy6Gd5Fs0AeUiOqZ"
NOW = 1_800_000_000.0
FAST = Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))

SETTINGS = Settings(secret=SECRET, login_stall_ms=0, audience=None)
VERIFIER = TokenVerifier(token_policy(SETTINGS))
EXTRACTOR = Extractor(("access_token",), "directus_session_token")

_users = MemoryUserStore()
_users.create(
    User(
        id="u1",
        email="ada@example.com",
        password_hash=FAST.hash("pw"),
        role="r1",
        token_hash=hash_token("static-token-of-ada"),
    )
)


def _core() -> TokenGuard:
    # The lockout and the per-account limit would soon lock the fuzzer out of the success
    # paths it should explore; the address limiter stays on (with room) to run its code.
    settings = SETTINGS.with_changes(
        auth_login_attempts=0,
        login_account_points=0,
        rate_limiter_enabled=True,
        rate_limiter_points=10**9,
        csrf_trusted_origins=("https://app.example",),
    )
    return TokenGuard(
        settings,
        users=_users,
        sessions=MemorySessionStore(),
        clock=lambda: NOW,
        passwords=FAST,
    )


def _session_token(core: TokenGuard) -> str:
    """A live session-mode cookie value, so that the session paths are explored too."""
    from tokenguard.auth.service import ClientInfo, Credentials
    from tokenguard.flow import run_sync

    credentials = Credentials("ada@example.com", "pw")
    tokens = run_sync(core.auth.login(credentials, "session", ClientInfo(), 0.0))
    return tokens.access_token


APP = TokenGuardWSGI(lambda environ, start: (start("200 OK", []), [b"app"])[1], guard=_core())
_SESSION_TOKEN = _session_token(APP.core)
_VALID_TOKEN = jwt.encode(
    {
        "id": "u1",
        "role": "r1",
        "app_access": True,
        "admin_access": False,
        "iat": int(NOW),
        "exp": int(NOW) + 900,
        "iss": "directus",
    },
    SECRET,
    algorithm="HS256",
)
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")
_PATHS = ("/auth/login", "/auth/refresh", "/auth/logout", "/auth", "/items", "/auth/login/")


def _check_error(error: AuthError) -> None:
    body = json.loads(error.body)
    assert list(body) == ["errors"], body
    assert isinstance(body["errors"][0]["extensions"]["code"], str)


def _verify_result(result: Any) -> None:
    if result is None or isinstance(result, dict):
        return
    assert isinstance(result, AuthError), type(result)
    assert result.status in (401, 403), result.status


_NAMES = ("access_token", "access_token[]", "access%5Ftoken", "access_token[0]", "x", "")
_SCHEMES = ("Bearer ", "bearer ", "BEARER ", "Basic ", "Bearer  ", "Bearer", "")


def _token(fdp: atheris.FuzzedDataProvider) -> str:
    """A token-like string: often one of ours (maybe mangled), else anything."""
    pick = fdp.ConsumeIntInRange(0, 3)
    if pick == 0:
        return _VALID_TOKEN
    if pick == 1:
        cut = fdp.ConsumeIntInRange(0, len(_VALID_TOKEN))
        return _VALID_TOKEN[:cut] + fdp.ConsumeUnicodeNoSurrogates(8) + _VALID_TOKEN[cut:]
    if pick == 2:
        return "static-token-of-ada"
    return fdp.ConsumeUnicodeNoSurrogates(120)


def _structured_query(fdp: atheris.FuzzedDataProvider) -> str:
    parts = []
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        name = fdp.PickValueInList(list(_NAMES))
        parts.append(f"{name}={_token(fdp)}" if fdp.ConsumeBool() else name)
    return "&".join(parts)


def _structured_cookie(fdp: atheris.FuzzedDataProvider) -> str:
    parts = []
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        name = fdp.PickValueInList(
            ["directus_session_token", "directus_refresh_token", "theme", " directus_session_token"]
        )
        value = _token(fdp)
        if fdp.ConsumeBool():
            value = f'"{value}"'
        parts.append(f"{name}={value}")
    return fdp.PickValueInList(["; ", ";", ", "]).join(parts)


def fuzz_extract(fdp: atheris.FuzzedDataProvider) -> None:
    if fdp.ConsumeBool():
        scheme = fdp.PickValueInList(list(_SCHEMES))
        authorization = scheme + _token(fdp) if fdp.ConsumeBool() else None
        query = _structured_query(fdp)
        cookie = _structured_cookie(fdp) if fdp.ConsumeBool() else None
    else:
        authorization = fdp.ConsumeUnicodeNoSurrogates(200) if fdp.ConsumeBool() else None
        query = fdp.ConsumeUnicodeNoSurrogates(300)
        cookie = fdp.ConsumeUnicodeNoSurrogates(300) if fdp.ConsumeBool() else None
    count = fdp.ConsumeIntInRange(0, 3)
    found = EXTRACTOR(authorization, query, cookie, authorization_count=count)
    if isinstance(found, AuthError):
        assert found.status == 400
        _check_error(found)
    bearer = EXTRACTOR.bearer_only(authorization, query, count)
    if bearer is not None:
        # The fast path may only answer when the full extractor agrees.
        assert found is not None and not isinstance(found, AuthError)
        assert found.token == bearer and found.source == "header"


def fuzz_cookie(fdp: atheris.FuzzedDataProvider) -> None:
    name = fdp.ConsumeUnicodeNoSurrogates(20) or "directus_session_token"
    if fdp.ConsumeBool():
        name = "directus_session_token"
        header = _structured_cookie(fdp) + fdp.ConsumeUnicodeNoSurrogates(40)
    else:
        header = fdp.ConsumeUnicodeNoSurrogates(500)
    value = parse_cookie(header, name)
    assert value is None or isinstance(value, str)


def fuzz_verify(fdp: atheris.FuzzedDataProvider) -> None:
    token = fdp.ConsumeUnicodeNoSurrogates(5000) if fdp.ConsumeBool() else fdp.ConsumeString(5000)
    _verify_result(VERIFIER.verify(token, NOW))


def fuzz_signed(fdp: atheris.FuzzedDataProvider) -> None:
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 120))
    if fdp.ConsumeBool():
        header = b'{"alg":"HS256","typ":"JWT"}'
    payload = fdp.ConsumeBytes(2000)
    if fdp.ConsumeBool():
        # Steer towards payloads that claim to be ours, so the claim checks run.
        payload = b'{"iss":"directus",' + payload
    signing_input = f"{b64(header)}.{b64(payload)}"
    sig = hmac.digest(SECRET.encode(), signing_input.encode(), hashlib.sha256)
    result = VERIFIER.verify(f"{signing_input}.{b64(sig)}", NOW)
    _verify_result(result)
    if isinstance(result, dict):
        # Accepted: the claims must satisfy what the guard relies on.
        assert result.get("iss") == "directus"
        assert type(result.get("exp")) is int and result["exp"] > NOW - 5
        assert result["app_access"] in (True, False) and result["admin_access"] in (True, False)


def fuzz_body(fdp: atheris.FuzzedDataProvider) -> None:
    content_type = fdp.PickValueInList(
        [
            None,
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "application/json; charset=latin1",
            "application/x-www-form-urlencoded",
        ]
    )
    structured = fdp.ConsumeBool()
    body = json.dumps(_login_like(fdp)).encode() if structured else fdp.ConsumeBytes(3000)
    data = parse_json_body(body, content_type)
    if isinstance(data, AuthError):
        assert data.status == 400
        _check_error(data)
        return
    payload = validate_login(data)
    if isinstance(payload, AuthError):
        assert payload.status == 400
        _check_error(payload)


def _value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    pick = fdp.ConsumeIntInRange(0, 8 if depth < 2 else 5)
    if pick == 0:
        return None
    if pick == 1:
        return fdp.ConsumeBool()
    if pick == 2:
        return fdp.ConsumeInt(4)
    if pick == 3:
        return fdp.ConsumeUnicodeNoSurrogates(40)
    if pick == 4:
        return fdp.PickValueInList(
            ["ada@example.com", "pw", "json", "cookie", "session", "", "a@b", "x" * 64, "123456"]
        )
    if pick == 5:
        return fdp.ConsumeFloat()
    if pick == 6:
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    return {fdp.ConsumeUnicodeNoSurrogates(8): _value(fdp, depth + 1)}


def _login_like(fdp: atheris.FuzzedDataProvider) -> Any:
    """A JSON value shaped like a login/refresh body: the schema's keys, any typed values."""
    if fdp.ConsumeIntInRange(0, 9) == 0:
        return _value(fdp)
    body: dict[str, Any] = {}
    for key in ("email", "password", "mode", "otp", "refresh_token", "extra"):
        if fdp.ConsumeBool():
            body[key] = _value(fdp)
    return body


def _start(status_holder: list[str]) -> Any:
    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status_holder.append(status)
        for name, value in headers:
            assert "\n" not in value and "\r" not in value, (name, value)
        return lambda data: None

    return start_response


def fuzz_app(fdp: atheris.FuzzedDataProvider) -> None:
    method = fdp.PickValueInList(list(_METHODS))
    path = fdp.PickValueInList(list(_PATHS))
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": fdp.ConsumeUnicodeNoSurrogates(80) if fdp.ConsumeBool() else "",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "http",
    }
    choice = fdp.ConsumeIntInRange(0, 5)
    if choice == 1:
        environ["HTTP_AUTHORIZATION"] = "Bearer " + _VALID_TOKEN
    elif choice == 2:
        environ["HTTP_AUTHORIZATION"] = fdp.ConsumeUnicodeNoSurrogates(300)
    elif choice == 3:
        environ["HTTP_COOKIE"] = fdp.ConsumeUnicodeNoSurrogates(300)
    elif choice == 4:
        environ["HTTP_COOKIE"] = _structured_cookie(fdp)
        if fdp.ConsumeBool():
            environ["HTTP_COOKIE"] += f"; directus_session_token={_SESSION_TOKEN}"
    if fdp.ConsumeBool():
        environ["HTTP_ORIGIN"] = fdp.PickValueInList(
            [
                "http://testserver",
                "https://evil.example",
                "null",
                fdp.ConsumeUnicodeNoSurrogates(40),
            ]
        )
    if fdp.ConsumeBool():
        environ["CONTENT_TYPE"] = "application/json"
    body = fdp.ConsumeBytes(2000)
    if fdp.ConsumeBool():
        # A body shaped like a login/refresh, fields fuzzed.
        if fdp.ConsumeBool():
            body = json.dumps(_login_like(fdp)).encode()
        else:
            body = json.dumps(
                {
                    "email": fdp.PickValueInList(
                        ["ada@example.com", fdp.ConsumeUnicodeNoSurrogates(30)]
                    ),
                    "password": fdp.PickValueInList(["pw", fdp.ConsumeUnicodeNoSurrogates(30)]),
                    "mode": fdp.PickValueInList(["json", "cookie", "session", None, 1]),
                    "refresh_token": fdp.ConsumeUnicodeNoSurrogates(70),
                }
            ).encode()
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input"] = io.BytesIO(body)
    status: list[str] = []
    chunks = APP(environ, _start(status))
    out = b"".join(chunks)
    code = int(status[0].split()[0])
    assert code < 500, (status[0], out[:300])
    if code >= 400 and method != "HEAD":
        data = json.loads(out)
        assert list(data) == ["errors"] and isinstance(data["errors"][0]["extensions"]["code"], str)


TARGETS = (fuzz_extract, fuzz_cookie, fuzz_verify, fuzz_signed, fuzz_body, fuzz_app)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    fdp = atheris.FuzzedDataProvider(data[1:])
    TARGETS[data[0] % len(TARGETS)](fdp)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
