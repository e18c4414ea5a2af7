"""A tiny OpenID Connect provider for tests, served on 127.0.0.1 and a free port.

Authorization code flow with PKCE (S256) and ``client_secret_basic``; ID tokens signed RS256
with a fresh RSA key; discovery, JWKS and userinfo. It approves every authorization request
at once for :attr:`OIDCProvider.claims` (no login page). Knobs let a test tamper with what it
answers: ``id_token_overrides`` (e.g. another ``nonce`` or ``iss``), ``state_override``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

CLIENT_ID = "tokenguard-test"
CLIENT_SECRET = "s3cret/with+odd=chars"


class OIDCProvider:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(4)
        self.claims: dict[str, Any] = {
            "sub": "idp-user-1",
            "email": "sso.user@example.com",
            "email_verified": True,
            "given_name": "Sso",
            "family_name": "User",
        }
        self.id_token_overrides: dict[str, Any] = {}
        self.state_override: str | None = None
        self.alg_override: str | None = None
        self.codes: dict[str, dict[str, Any]] = {}
        self.token_requests: list[dict[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    # -- what the provider signs ----------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def id_token(self, nonce: str | None) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            **self.claims,
            **self.id_token_overrides,
        }
        claims = {k: v for k, v in claims.items() if v is not None}
        if self.alg_override == "HS256":
            # The classic confusion: an HMAC "signed" with something the client knows.
            return jwt.encode(claims, CLIENT_SECRET, algorithm="HS256", headers={"kid": self.kid})
        if self.alg_override == "none":
            return jwt.encode(claims, None, algorithm="none", headers={"kid": self.kid})
        if self.alg_override == "other-key":
            other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return jwt.encode(claims, other, algorithm="RS256", headers={"kid": self.kid})
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    # -- HTTP -----------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, data: Any) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query))
                if parts.path == "/.well-known/openid-configuration":
                    base = provider.url
                    self._json(
                        200,
                        {
                            "issuer": base,
                            "authorization_endpoint": base + "/authorize",
                            "token_endpoint": base + "/token",
                            "userinfo_endpoint": base + "/userinfo",
                            "jwks_uri": base + "/jwks",
                        },
                    )
                elif parts.path == "/jwks":
                    self._json(200, provider.jwks())
                elif parts.path == "/authorize":
                    if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
                        self._json(400, {"error": "invalid_request"})
                        return
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = dict(query)
                    state = provider.state_override or query.get("state", "")
                    target = query["redirect_uri"] + "?" + urlencode({"code": code, "state": state})
                    self.send_response(302)
                    self.send_header("location", target)
                    self.send_header("content-length", "0")
                    self.end_headers()
                elif parts.path == "/userinfo":
                    if not self.headers.get("authorization", "").startswith("Bearer at-"):
                        self._json(401, {"error": "invalid_token"})
                        return
                    self._json(
                        200, {"sub": provider.claims["sub"], "email": provider.claims.get("email")}
                    )
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                provider.token_requests.append(form)
                if urlsplit(self.path).path != "/token":
                    self._json(404, {"error": "not_found"})
                    return
                expected = (
                    "Basic "
                    + base64.b64encode(
                        f"{CLIENT_ID}:{CLIENT_SECRET.replace('/', '%2F').replace('+', '%2B').replace('=', '%3D')}".encode()
                    ).decode()
                )
                if self.headers.get("authorization") != expected:
                    self._json(401, {"error": "invalid_client"})
                    return
                grant = provider.codes.pop(form.get("code", ""), None)  # single use
                if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
                    self._json(400, {"error": "invalid_grant"})
                    return
                verifier = form.get("code_verifier", "")
                challenge = (
                    base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                    .rstrip(b"=")
                    .decode()
                )
                if grant.get("code_challenge_method") != "S256" or challenge != grant.get(
                    "code_challenge"
                ):
                    self._json(400, {"error": "invalid_grant", "error_description": "PKCE"})
                    return
                self._json(
                    200,
                    {
                        "access_token": "at-" + secrets.token_urlsafe(16),
                        "token_type": "Bearer",
                        "expires_in": 300,
                        "id_token": provider.id_token(grant.get("nonce")),
                    },
                )

        return Handler

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def running_provider() -> Iterator[OIDCProvider]:
    provider = OIDCProvider()
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()
