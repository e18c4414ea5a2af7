"""The CSRF policy's defaults, pinned: what ``CsrfPolicy()`` and the default settings do.

A default is a decision for every deployment that does not set the option, so it is stated
here as the requests it lets through and the ones it refuses (issue 31).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.helpers.auth import error_body
from tests.helpers.tokens import mint
from tests.security.harness import SECRET, Shell
from tokenguard.guard.csrf import CROSS_ORIGIN, NO_ORIGIN, CsrfPolicy

KINDS = ["asgi", "wsgi"]
JWT_USER = "8f0c2b1e-4c5d-4e6f-9a0b-1c2d3e4f5a6b"  # tests.helpers.tokens.claims()


def forbidden(reason: str) -> bytes:
    return error_body("FORBIDDEN", reason, reason=reason)


def test_the_default_policy_is_on_and_lets_a_request_without_origin_through() -> None:
    policy = CsrfPolicy()
    assert (policy.enabled, policy.require_origin, policy.trusted) == (True, False, frozenset())
    # Neither Origin nor Referer: a non-browser client, let through by default.
    assert policy.check("POST", None, None, "api.example.test", "http") is None
    assert policy.check("POST", None, "", "api.example.test", "http") is None
    # On by default: a foreign origin is refused.
    refused = policy.check("POST", "https://evil.example", None, "api.example.test", "http")
    assert refused is not None
    assert (refused.status, refused.body) == (403, forbidden(CROSS_ORIGIN))


def test_require_origin_refuses_a_request_without_origin() -> None:
    refused = CsrfPolicy(require_origin=True).check("POST", None, None, "api.example.test", "http")
    assert refused is not None
    assert (refused.status, refused.body) == (403, forbidden(NO_ORIGIN))
    assert CsrfPolicy(require_origin=True).check("GET", None, None, "api.example.test", "http") is None


@pytest.mark.parametrize("kind", KINDS)
def test_by_default_a_cookie_post_without_origin_passes(shell_of: Callable[..., Shell], kind: str) -> None:
    s = shell_of(kind)
    cookie = f"directus_session_token={mint(secret=SECRET)}"
    reply = s.request("POST", "/items", headers={"cookie": cookie})
    assert (reply.status, reply.body) == (200, f"app {JWT_USER} jwt".encode())
    reply = s.request("POST", "/items", headers={"cookie": cookie, "origin": "https://evil.example"})
    assert (reply.status, reply.body) == (403, forbidden(CROSS_ORIGIN))


@pytest.mark.parametrize("kind", KINDS)
def test_with_require_origin_a_cookie_post_without_origin_is_refused(shell_of: Callable[..., Shell], kind: str) -> None:
    s = shell_of(kind, csrf_require_origin=True)
    cookie = f"directus_session_token={mint(secret=SECRET)}"
    reply = s.request("POST", "/items", headers={"cookie": cookie})
    assert (reply.status, reply.body) == (403, forbidden(NO_ORIGIN))
    same = s.request("POST", "/items", headers={"cookie": cookie, "origin": "http://api.example.test"})
    assert (same.status, same.body) == (200, f"app {JWT_USER} jwt".encode())


# --- found by the mutation run (scripts/mutation.py) ----------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_origin_null_is_refused_as_cross_origin(shell_of: Callable[..., Shell], kind: str) -> None:
    # A sandboxed frame or a file: page says "Origin: null": not an origin at all, so not ours.
    s = shell_of(kind)
    cookie = f"directus_session_token={mint(secret=SECRET)}"
    reply = s.request("POST", "/items", headers={"cookie": cookie, "origin": "null"})
    assert (reply.status, reply.body) == (403, forbidden(CROSS_ORIGIN))


@pytest.mark.parametrize("kind", KINDS)
def test_a_query_token_beside_the_cookie_is_not_checked_for_origin(shell_of: Callable[..., Shell], kind: str) -> None:
    # The credential is the query token (a page's script put it there), not the ambient
    # cookie: a cross-origin POST carrying both passes, as a Bearer one would.
    s = shell_of(kind)
    token = mint(secret=SECRET)
    headers = {"cookie": "directus_session_token=not-a-token", "origin": "https://evil.example"}
    reply = s.request("POST", f"/items?access_token={token}", headers=headers)
    assert (reply.status, reply.body) == (200, f"app {JWT_USER} jwt".encode())
    # The same cookie alone is the credential, and is checked.
    cookie = {"cookie": f"directus_session_token={token}", "origin": "https://evil.example"}
    reply = s.request("POST", "/items", headers=cookie)
    assert (reply.status, reply.body) == (403, forbidden(CROSS_ORIGIN))
