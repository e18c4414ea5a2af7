"""Verify-only mode: a service with no secret reads the issuer's JWKS over HTTP (127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import GeneratorType
from typing import Any

import pytest

from tests.helpers.tokens import SECRET
from tests.jose.test_keys import issue, keys_json
from tokenguard.app import TokenGuard
from tokenguard.config import Settings
from tokenguard.flow import run_async, run_sync
from tokenguard.guard.decide import Refusal
from tokenguard.jose.keys import MIN_REFETCH_FLOOR_S, KeyRing
from tokenguard.principal import Principal


class Issuer:
    """A JWKS endpoint whose key set the test changes; counts requests."""

    def __init__(self) -> None:
        self.body = b'{"keys":[]}'
        self.status = 200
        self.requests = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests += 1
                self.send_response(issuer.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(issuer.body)))
                self.end_headers()
                self.wfile.write(issuer.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        # A short poll interval: shutdown() waits for the next poll (0.5 s by default, per test).
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def publish(self, config: str) -> None:
        self.body = KeyRing.from_config(config).jwks_body()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    server = Issuer()
    try:
        yield server
    finally:
        server.close()


def authenticate(core: TokenGuard, token: str) -> Principal | Refusal:
    outcome = core.guard.authenticate(f"Bearer {token}", "", None)
    if isinstance(outcome, GeneratorType):
        outcome = run_sync(outcome)
    assert isinstance(outcome, Principal | Refusal)
    return outcome


def verify_only(issuer: Issuer, **more: Any) -> TokenGuard:
    # No SECRET at all: this service can verify, never sign.
    return TokenGuard(Settings.from_env({}, jwks_url=issuer.url, **more))


def test_verify_only_service_accepts_issuer_tokens_and_no_hmac(issuer: Issuer) -> None:
    issuer.publish(keys_json("ec", "ec"))
    signer = Settings(secret=SECRET, jwt_keys=keys_json("ec", "ec"))
    core = verify_only(issuer, jwks_min_refetch_ms=60_000)
    principal = authenticate(core, issue(signer))
    assert isinstance(principal, Principal) and principal.user == "u1"
    assert issuer.requests == 1
    # Served from the cache afterwards.
    for _ in range(5):
        assert isinstance(authenticate(core, issue(signer)), Principal)
    assert issuer.requests == 1
    # The issuer's HMAC tokens mean nothing here: no secret, no HMAC.
    refused = authenticate(core, issue(Settings(secret=SECRET)))
    assert isinstance(refused, Refusal) and refused.error.code == "INVALID_TOKEN"


def test_unknown_kids_refetch_at_a_bounded_rate(issuer: Issuer) -> None:
    issuer.publish(keys_json("ec", "ec"))
    core = verify_only(issuer, jwks_min_refetch_ms=60_000)
    assert isinstance(authenticate(core, issue(Settings(secret=SECRET, jwt_keys=keys_json("ec", "ec")))), Principal)
    # A flood of tokens naming keys the issuer does not have: at most one fetch per minute.
    stranger = Settings(secret=SECRET, jwt_keys=keys_json("ed", "ed"))
    for _ in range(20):
        refused = authenticate(core, issue(stranger))
        assert isinstance(refused, Refusal) and (refused.error.status, refused.error.code) == (403, "INVALID_TOKEN")
    assert issuer.requests == 1


def test_rotation_at_the_issuer_is_picked_up_on_the_unknown_kid(issuer: Issuer) -> None:
    issuer.publish(keys_json("rsa", "rsa"))
    core = verify_only(issuer, jwks_min_refetch_ms=0)
    old = issue(Settings(secret=SECRET, jwt_keys=keys_json("rsa", "rsa")))
    assert isinstance(authenticate(core, old), Principal)
    # The issuer adds and activates a new key; the verifier learns it on the first token.
    issuer.publish(keys_json("ed", "rsa", "ed"))
    time.sleep(MIN_REFETCH_FLOOR_S)
    new = issue(Settings(secret=SECRET, jwt_keys=keys_json("ed", "rsa", "ed")))
    assert isinstance(authenticate(core, new), Principal)
    assert isinstance(authenticate(core, old), Principal)
    assert issuer.requests == 2


def test_issuer_outage_keeps_known_keys_and_refuses_unknown(issuer: Issuer) -> None:
    issuer.publish(keys_json("ec", "ec"))
    core = verify_only(issuer, jwks_min_refetch_ms=0)
    token = issue(Settings(secret=SECRET, jwt_keys=keys_json("ec", "ec")))
    assert isinstance(authenticate(core, token), Principal)
    issuer.status = 500
    issuer.body = b"oops"
    time.sleep(MIN_REFETCH_FLOOR_S)
    refused = authenticate(core, issue(Settings(secret=SECRET, jwt_keys=keys_json("ed", "ed"))))
    assert isinstance(refused, Refusal) and refused.error.code == "INVALID_TOKEN"
    assert isinstance(authenticate(core, token), Principal)


def test_cache_lifetime_bounds_a_retired_key(issuer: Issuer) -> None:
    issuer.publish(keys_json("rsa", "rsa", "ed"))
    core = verify_only(issuer, jwks_cache_ms=1, jwks_min_refetch_ms=0)
    old = issue(Settings(secret=SECRET, jwt_keys=keys_json("rsa", "rsa")))
    assert isinstance(authenticate(core, old), Principal)
    issuer.publish(keys_json("ed", "ed"))  # the issuer retired "rsa"
    time.sleep(MIN_REFETCH_FLOOR_S)
    core.guard.cache.clear()
    refused = authenticate(core, old)
    assert isinstance(refused, Refusal) and refused.error.code == "INVALID_TOKEN"


def test_the_fetch_runs_off_the_event_loop(issuer: Issuer) -> None:
    issuer.publish(keys_json("ec", "ec"))
    core = TokenGuard(Settings.from_env({}, jwks_url=issuer.url), flavour="async")
    token = issue(Settings(secret=SECRET, jwt_keys=keys_json("ec", "ec")))
    loop_thread: list[int] = []
    original = core.guard.verifier.keys.remote.refresh  # type: ignore[union-attr]

    def refresh() -> bool:
        loop_thread.append(threading.get_ident())
        return original()

    core.guard.verifier.keys.remote.refresh = refresh  # type: ignore[union-attr,method-assign]

    async def main() -> tuple[Any, int]:
        outcome = core.guard.authenticate(f"Bearer {token}", "", None)
        assert isinstance(outcome, GeneratorType)
        return await run_async(outcome), threading.get_ident()

    outcome, loop_ident = asyncio.run(main())
    assert isinstance(outcome, Principal)
    assert loop_thread and loop_thread[0] != loop_ident


def test_jwks_payload_with_hmac_or_private_keys_is_not_used(issuer: Issuer) -> None:
    ring = KeyRing.from_config(keys_json("ec", "ec"))
    keys = ring.jwks()["keys"]
    keys.append({"kty": "oct", "kid": "hs", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"})
    issuer.body = json.dumps({"keys": keys}).encode()
    core = verify_only(issuer, jwks_min_refetch_ms=0)
    remote = core.guard.verifier.keys.remote  # type: ignore[union-attr]
    assert remote is not None and remote.refresh()
    assert remote.lookup("ec") is not None and remote.lookup("hs") is None


def test_verify_only_service_serves_no_auth_route(issuer: Issuer) -> None:
    core = verify_only(issuer)
    for method, path in (("POST", "/auth/login"), ("POST", "/auth/refresh"), ("GET", "/auth"),
                         ("GET", "/auth/jwks.json")):  # fmt: skip
        assert not core.router.answers(method, path)
    # A service that signs (its own keys or SECRET) and also trusts a remote set keeps them.
    both = TokenGuard(Settings(secret=SECRET, jwks_url=issuer.url))
    assert both.router.answers("POST", "/auth/login")


def test_known_keys_outlive_the_cache_while_the_issuer_is_down(issuer: Issuer) -> None:
    issuer.publish(keys_json("ec", "ec"))
    core = verify_only(issuer, jwks_cache_ms=1, jwks_min_refetch_ms=0)
    token = issue(Settings(secret=SECRET, jwt_keys=keys_json("ec", "ec")))
    assert isinstance(authenticate(core, token), Principal)
    issuer.status = 503
    time.sleep(MIN_REFETCH_FLOOR_S)
    core.guard.cache.clear()
    before = issuer.requests
    assert isinstance(authenticate(core, token), Principal)  # tried the issuer, kept the key
    assert issuer.requests > before


def test_one_request_makes_at_most_one_fetch(issuer: Issuer) -> None:
    issuer.publish(keys_json("ec", "ec"))
    core = verify_only(issuer, jwks_min_refetch_ms=0, jwks_cache_ms=1)
    stranger = issue(Settings(secret=SECRET, jwt_keys=keys_json("ed", "ed")))
    for _ in range(3):
        time.sleep(MIN_REFETCH_FLOOR_S)
        before = issuer.requests
        refused = authenticate(core, stranger)
        assert isinstance(refused, Refusal) and refused.error.code == "INVALID_TOKEN"
        assert issuer.requests - before == 1
