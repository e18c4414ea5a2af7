"""The account rules of single sign-on (tokenguard.auth.drivers.external), for every driver.

Driven with run_sync over the real memory and SQLite stores; the OpenID/OAuth 2 round trip
that feeds them is tested in tests/test_sso.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenguard.auth.drivers.external import (
    ExternalIdentity,
    Registration,
    check_user_store,
    mapped_role,
    user_for_identity,
)
from tokenguard.auth.drivers.sso import identity_from_profile
from tokenguard.auth.providers import Provider, role_mapping
from tokenguard.errors import AuthError, ConfigError
from tokenguard.flow import run_sync
from tokenguard.stores.base import StoreUnavailable, User
from tokenguard.stores.memory import MemoryUserStore
from tokenguard.stores.sqlite import SQLiteUserStore

OPEN = Registration(allow_public_registration=True, default_role_id="r-default")
ADA = ExternalIdentity(
    provider="idp",
    identifier="sub-ada",
    email="ada@example.com",
    email_verified=True,
    first_name="Ada",
    last_name="Lovelace",
)


@pytest.fixture(params=["memory", "sqlite"])
def users(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    if request.param == "memory":
        yield MemoryUserStore()
        return
    store = SQLiteUserStore(tmp_path / "users.db")
    yield store
    store.close()


def login(users: Any, identity: ExternalIdentity, registration: Registration = OPEN) -> User:
    return run_sync(user_for_identity(users, identity, registration))


def refused(users: Any, identity: ExternalIdentity, registration: Registration = OPEN) -> str:
    with pytest.raises(AuthError) as caught:
        login(users, identity, registration)
    return caught.value.code


def test_registration_keeps_the_identifier_and_the_default_role(users: Any) -> None:
    ada = login(users, ADA)
    assert (ada.email, ada.provider, ada.external_identifier, ada.role) == (
        "ada@example.com",
        "idp",
        "sub-ada",
        "r-default",
    )
    assert (ada.first_name, ada.last_name, ada.password_hash, ada.status) == (
        "Ada",
        "Lovelace",
        None,
        "active",
    )
    assert login(users, ADA) == ada
    assert login(users, replace(ADA, identifier="SUB-ADA")) == ada  # case-insensitive
    assert len(users.list_users()) == 1


def test_the_identifier_decides_not_the_email(users: Any) -> None:
    ada = login(users, ADA)
    # The provider now reports another address for the same person: still Ada.
    assert login(users, replace(ADA, email="ada@new.example.com")) == ada
    # Someone else now holds Ada's old address at the provider: not Ada, and not registered
    # over her either.
    assert refused(users, replace(ADA, identifier="sub-mallory")) == "INVALID_CREDENTIALS"
    assert users.list_users() == [ada]


def test_no_registration_unless_allowed(users: Any) -> None:
    closed = Registration(allow_public_registration=False)
    assert refused(users, ADA, closed) == "INVALID_CREDENTIALS"
    assert users.list_users() == []


def test_unverified_or_missing_email_never_registers(users: Any) -> None:
    assert refused(users, replace(ADA, email_verified=False)) == "INVALID_CREDENTIALS"
    assert refused(users, replace(ADA, email=None)) == "INVALID_CREDENTIALS"
    assert refused(users, replace(ADA, email="not-an-address")) == "INVALID_CREDENTIALS"
    assert users.list_users() == []
    # A provider that does not say (None) may register: Directus does not require it.
    assert login(users, replace(ADA, email_verified=None)).external_identifier == "sub-ada"


def test_unusable_identifiers_are_refused(users: Any) -> None:
    assert refused(users, replace(ADA, identifier="")) == "INVALID_CREDENTIALS"
    assert refused(users, replace(ADA, identifier="x" * 256)) == "INVALID_CREDENTIALS"
    assert users.list_users() == []


def test_a_user_of_another_provider_is_not_signed_in(users: Any) -> None:
    users.create(User(id="u1", email="x@example.com", provider="ldap", external_identifier="sub-ada"))
    assert refused(users, ADA) == "INVALID_CREDENTIALS"


def test_inactive_users_are_refused(users: Any) -> None:
    ada = login(users, ADA)
    users.update(ada.id, status="suspended")
    assert refused(users, ADA) == "INVALID_CREDENTIALS"


def test_local_users_are_linked_only_with_link_existing_and_a_verified_email(users: Any) -> None:
    local = users.create(User(id="u-local", email="Ada@Example.com", password_hash="h"))
    assert refused(users, ADA) == "INVALID_CREDENTIALS"
    linking = replace(OPEN, link_existing=True)
    assert refused(users, replace(ADA, email_verified=None), linking) == "INVALID_CREDENTIALS"
    assert login(users, ADA, linking) == local
    assert users.get_by_id("u-local") == local  # nothing written: still a local user


def test_users_registered_before_identifiers_are_adopted_once(users: Any) -> None:
    legacy = users.create(User(id="u-old", email="ada@example.com", provider="idp"))
    adopted = login(users, ADA)
    assert adopted == replace(legacy, external_identifier="sub-ada")
    assert users.get_by_external_identifier("sub-ada") == adopted
    # From now on the identifier decides: another identity with that e-mail is refused.
    assert refused(users, replace(ADA, identifier="sub-other")) == "INVALID_CREDENTIALS"
    assert refused(
        users, replace(ADA, identifier="sub-x", email_verified=False)
    ) == "INVALID_CREDENTIALS"


def test_sync_user_info_refreshes_names_and_email(users: Any) -> None:
    ada = login(users, ADA)
    moved = replace(ADA, email="ada@new.example.com", first_name="Augusta", last_name=None)
    assert login(users, moved) == ada  # off by default
    synced = login(users, moved, replace(OPEN, sync_user_info=True))
    assert (synced.email, synced.first_name, synced.last_name) == (
        "ada@new.example.com",
        "Augusta",
        "Lovelace",  # a provider that sends nothing does not erase
    )
    users.create(User(id="u-bob", email="bob@example.com"))
    taken = login(users, replace(moved, email="bob@example.com", first_name="A."),
                  replace(OPEN, sync_user_info=True))
    assert (taken.email, taken.first_name) == ("ada@new.example.com", "A.")


def test_a_role_mapping_applies_at_registration_and_every_login(users: Any) -> None:
    mapping = {"admins": "r-admin", "staff": "r-staff"}
    rules = replace(OPEN, update_role=True)
    first = login(users, replace(ADA, role=mapped_role(["staff", "admins"], mapping)), rules)
    assert first.role == "r-admin"  # the first mapping entry that matches wins
    again = login(users, replace(ADA, role=mapped_role(["staff"], mapping)), rules)
    assert again.role == "r-staff"
    dropped = login(users, replace(ADA, role=mapped_role([], mapping)), rules)
    assert dropped.role == "r-default"
    assert users.get_by_id(first.id).role == "r-default"


@pytest.mark.parametrize("moment", ["after the lookup", "during the insert"])
def test_concurrent_first_logins_converge(users: Any, moment: str) -> None:
    """The loser of a registration race finds the winner's user instead of failing."""

    class Racing:
        def __init__(self, inner: Any) -> None:
            self.inner, self.raced = inner, False

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def _other_process(self) -> None:
            if not self.raced:
                self.raced = True
                run_sync(user_for_identity(self.inner, ADA, OPEN))

        def get_by_external_identifier(self, identifier: str) -> User | None:
            found = self.inner.get_by_external_identifier(identifier)
            if moment == "after the lookup":
                self._other_process()
            return found

        def create(self, user: User) -> User:
            if moment == "during the insert":
                self._other_process()
            return self.inner.create(user)

    racing = Racing(users)
    user = login(racing, ADA)
    assert racing.raced
    assert users.list_users() == [user]


def test_a_store_that_cannot_answer_is_a_503() -> None:
    class Down(MemoryUserStore):
        def get_by_external_identifier(self, identifier: str) -> User | None:
            raise StoreUnavailable("database")

    with pytest.raises(AuthError) as caught:
        login(Down(), ADA)
    assert (caught.value.status, caught.value.code) == (503, "SERVICE_UNAVAILABLE")


def test_stores_without_the_lookup_are_refused_at_start_up() -> None:
    class Old:
        def get_by_email(self, email: str) -> None:
            return None

    with pytest.raises(ConfigError, match="get_by_external_identifier"):
        check_user_store(Old())
    check_user_store(MemoryUserStore())


def test_role_mapping_setting() -> None:
    assert role_mapping("X", '{"b": "r2", "a": "r1"}') == (("b", "r2"), ("a", "r1"))
    assert role_mapping("X", None) == ()
    for bad in ("[]", '{"a": 1}', "{", '{"": "r"}'):
        with pytest.raises(ConfigError, match="X must be a JSON object"):
            role_mapping("X", bad)


OPENID = Provider(name="idp", driver="openid", first_name_key="given_name",
                  last_name_key="family_name", role_mapping=(("admins", "r-admin"),))
OAUTH2 = Provider(name="gh", driver="oauth2", identifier_key=None)


def test_profiles_become_identities() -> None:
    profile = {"sub": "s1", "email": "a@example.com", "email_verified": True,
               "given_name": "A", "family_name": "B", "groups": ["admins"]}
    assert identity_from_profile(OPENID, profile) == ExternalIdentity(
        "idp", "s1", "a@example.com", True, "A", "B", "r-admin"
    )
    # oauth2 has no identifier claim by default: the e-mail is the identifier, as in Directus.
    assert identity_from_profile(OAUTH2, {"id": 7, "email": "g@example.com"}) == ExternalIdentity(
        "gh", "g@example.com", "g@example.com"
    )
    numeric = replace(OAUTH2, identifier_key="id")
    assert identity_from_profile(numeric, {"id": 7}).identifier == "7"
    nested = replace(OAUTH2, identifier_key="account.id", email_key="account.mail")
    found = identity_from_profile(nested, {"account": {"id": "n1", "mail": "n@example.com"}})
    assert (found.identifier, found.email) == ("n1", "n@example.com")
    assert identity_from_profile(OPENID, {"email_verified": "false", "sub": "s"}).email_verified is False
    assert identity_from_profile(OPENID, {"groups": "admins", "sub": "s"}).role == "r-admin"
    assert identity_from_profile(OPENID, {"name": "nobody"}) is None
    assert identity_from_profile(OPENID, {"sub": True, "email": ["x"]}) is None


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    profile=st.dictionaries(
        st.sampled_from(["sub", "email", "email_verified", "given_name", "groups", "account", "x"]),
        _json,
        max_size=6,
    )
)
def test_any_profile_is_an_identity_or_a_refusal(profile: dict[str, Any]) -> None:
    """Whatever a provider sends, the answer is a user or 401, never an exception."""
    identity = identity_from_profile(replace(OPENID, identifier_key="account.id"), profile)
    if identity is None:
        return
    users = MemoryUserStore()
    try:
        user = login(users, identity)
    except AuthError as error:
        assert error.code == "INVALID_CREDENTIALS"
        assert users.list_users() == []
    else:
        assert user.external_identifier == identity.identifier
        assert users.list_users() == [user]


def test_each_update_of_a_returning_user_is_reported_before_and_after(users: Any) -> None:
    """The drivers pass AuthService.user_changed: it decides, from before and after, whether
    the user's older access tokens are revoked (a role synced from the provider's groups)."""
    reported: list[tuple[str | None, str | None]] = []

    def changed(before: User, after: User | None) -> Any:
        reported.append((before.role, after.role if after is not None else None))
        return
        yield

    mapping = {"admins": "r-admin", "staff": "r-staff"}
    rules = replace(OPEN, update_role=True)

    def sign_in(groups: list[str]) -> User:
        identity = replace(ADA, role=mapped_role(groups, mapping))
        return run_sync(user_for_identity(users, identity, rules, changed=changed))

    sign_in(["admins"])
    assert reported == []  # a registration changes no one
    sign_in(["admins"])
    assert reported == []  # nothing changed: nothing to report
    assert sign_in(["staff"]).role == "r-staff"
    assert reported == [("r-admin", "r-staff")]


def test_a_role_synced_at_sign_in_is_audited_as_a_user_change(users: Any) -> None:
    """The role sync goes through AuthService.user_changed, which records the change that
    voided the user's tokens: one ``user_change`` event, its reason the field, its provider
    the user's (no client here: the SSO drivers have none at hand, LDAP's passes its own)."""
    from tests.helpers.auth import SECRET, Clock
    from tokenguard import TokenGuard
    from tokenguard.logs.audit import AuditEvent
    from tokenguard.stores.audit import MemoryAuditStore
    from tokenguard.stores.memory import MemorySessionStore

    trail = MemoryAuditStore()
    core = TokenGuard(
        secret=SECRET, users=users, sessions=MemorySessionStore(), clock=Clock(), audit=trail
    )
    rules = replace(OPEN, update_role=True)

    def sign_in(role: str) -> User:
        identity = replace(ADA, role=role)
        return run_sync(
            user_for_identity(users, identity, rules, changed=core.auth.user_changed)
        )

    ada = sign_in("r-admin")
    sign_in("r-admin")
    assert trail.recent() == []  # a registration, then no change: nothing to record
    sign_in("r-staff")
    assert trail.recent() == [
        AuditEvent(
            event="user_change", outcome="success", timestamp="2027-01-15T08:00:00.000Z",
            user_id=ada.id, provider="idp", reason="role",
        )
    ]
