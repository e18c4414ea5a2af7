"""Single sign-on logins in the audit trail: the provider's name, the user, and refusals
(a replayed callback), against the tiny OpenID provider of tests.auth.test_sso."""

from __future__ import annotations

from tests.auth.test_sso import _reset_idp, client_for, idp, make_core, start, via_provider
from tests.helpers.oidc_provider import OIDCProvider
from tokenguard.stores.audit import MemoryAuditStore
from tokenguard.stores.memory import MemoryUserStore

__all__ = ["_reset_idp", "idp"]  # the fixtures, used by name


def test_sso_login_success_and_refusal(idp: OIDCProvider) -> None:
    users = MemoryUserStore()
    core = make_core(idp, users)
    store = MemoryAuditStore()
    core.audit.store = store
    client = client_for(core)
    location, _ = start(client)
    callback = via_provider(location)
    assert client.get(callback, environ_base={"REMOTE_ADDR": "198.51.100.4"}).status_code == 200
    assert client.get(callback, environ_base={"REMOTE_ADDR": "198.51.100.4"}).status_code == 401
    user = users.get_by_email("sso.user@example.com")
    assert user is not None
    ok, refused = reversed(store.recent())
    assert (ok.event, ok.outcome, ok.user_id, ok.provider, ok.ip, ok.reason) == (
        "login", "success", user.id, "idp", "198.51.100.4", None,
    )
    assert (refused.event, refused.outcome, refused.user_id, refused.provider, refused.reason) == (
        "login", "failure", None, "idp", "INVALID_CREDENTIALS",
    )
    # The authorization code and the state of the callback are nowhere in the trail.
    query = callback.split("?", 1)[1]
    for part in query.split("&"):
        value = part.partition("=")[2]
        assert all(value not in e.to_json() for e in store.recent())
