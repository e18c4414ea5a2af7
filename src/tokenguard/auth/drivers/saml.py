"""SAML 2.0 login, as Directus's ``saml`` driver offers it, built on pysaml2 (``tokenguard[saml]``).

Configuration (spec §10.2): ``AUTH_<P>_DRIVER=saml`` with the identity provider's metadata in
``AUTH_<P>_IDP_metadata`` and our own (the service provider's) in ``AUTH_<P>_SP_metadata``,
both XML documents. Our entity ID and the assertion consumer service (ACS) addresses come
from the SP metadata, the IdP's single sign-on address and signing certificates from the
IdP metadata.

The flow:

1. ``GET <auth>/login/<p>?redirect=…`` checks ``redirect`` against the allow list, then
   redirects (HTTP-Redirect binding) to the IdP with an ``AuthnRequest`` and
   ``RelayState=redirect``. The request's ID is self-authenticating: a random nonce and the
   time it was made, signed (:mod:`tokenguard.auth.signed`, purpose
   ``tokenguard/saml-request/v1``) together with the provider and the ``RelayState``, and
   refused after ``AUTH_<P>_LOGIN_TIMEOUT`` (5 min). Nothing is stored, and no cookie is
   needed (browsers do not send ``SameSite=Lax`` cookies on the IdP's cross-site POST).
2. ``POST <auth>/login/<p>/acs`` (HTTP-POST binding) hands ``SAMLResponse`` to pysaml2,
   which refuses it unless the response or its assertion is signed by a certificate of
   the IdP metadata, is not expired (``NotOnOrAfter``, 60 s of clock skew), is meant for
   us (audience, destination, recipient), and answers a request we made (``InResponseTo``
   checked with the signature above, so a swapped ``RelayState`` is refused too). Unsolicited
   (IdP-initiated) responses are refused unless ``AUTH_<P>_ALLOW_UNSOLICITED=true``.
3. The assertion's ID (and the request's) is claimed in the one-time store
   (:mod:`tokenguard.stores.once`: Redis, SQLite or memory) until it expires, so a replay
   is refused, across processes when the store is shared.
4. The user is the one whose ``external_identifier`` is the ``AUTH_<P>_IDENTIFIER_KEY``
   attribute (the NameID when the assertion has no such attribute and the NameID is not
   transient), found or registered by :func:`~tokenguard.auth.drivers.external.user_for_identity`.

With ``AUTH_<P>_SP_KEY_FILE`` and ``AUTH_<P>_SP_CERT_FILE`` (tokenguard-specific; PEM files),
AuthnRequests are signed (RSA-SHA256, on the redirect's query) and encrypted assertions are
decrypted; without them, requests go unsigned and encrypted assertions are refused.

Any failure is 401 ``INVALID_CREDENTIALS`` (logged by its exception type only), never a 500.
XML is parsed by pysaml2 through defusedxml (no entities, no external references);
signatures are checked by the ``xmlsec1`` program.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from ...errors import (
    AuthError,
    ConfigError,
    MissingExtra,
    invalid_credentials,
    invalid_payload,
    service_unavailable,
)
from ...flow import Call, Flow
from ...stores.base import AsyncOnceStore, OnceStore, User
from ..providers import Provider
from ..service import AuthService, ClientInfo, Mode, Tokens
from ..signed import BadData, SignedValues
from .external import ExternalIdentity, check_user_store, mapped_role, user_for_identity
from .sso import SSOFailure, is_login_redirect_allowed

__all__ = ["SAMLLogin", "SAMLProvider"]

log = logging.getLogger("tokenguard.auth")

#: Clock skew allowed on ``NotBefore``/``NotOnOrAfter``, in seconds.
CLOCK_SKEW_S = 60
#: Largest ``SAMLResponse`` read (base64); real ones are a few kilobytes.
MAX_RESPONSE_CHARS = 256 * 1024
#: Longest an assertion ID is remembered when its assertion does not say (ms).
_MAX_REPLAY_TTL_MS = 24 * 3600 * 1000
_TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
#: The signing purpose (salt) of our ``AuthnRequest`` IDs.
REQUEST_PURPOSE = "tokenguard/saml-request/v1"


def _import_saml2() -> Any:
    try:
        import saml2  # type: ignore[import-untyped]
        import saml2.client  # type: ignore[import-untyped]
        import saml2.config  # type: ignore[import-untyped]
        import saml2.md  # type: ignore[import-untyped]
        import saml2.sigver  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingExtra("the saml driver", "pysaml2", "saml") from exc
    return saml2


@dataclass(frozen=True, slots=True)
class Assertion:
    """What a verified SAML response says (the parts tokenguard uses)."""

    id: str
    in_response_to: str | None
    #: Unix time after which the assertion is no longer valid (0: it does not say).
    not_on_or_after: int
    name_id: str | None
    name_id_format: str | None
    #: Attribute name -> its values, in document order.
    attributes: Mapping[str, tuple[str, ...]]


class _IssuedRequests(Mapping[str, str]):
    """pysaml2's "outstanding queries", answered without storage: a request ID is ours when
    its signature (over the provider, its time and the response's ``RelayState``) is right
    and it has not expired."""

    def __init__(self, check: Callable[[str], bool]) -> None:
        self._check = check

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._check(key)

    def __getitem__(self, key: str) -> str:
        if key not in self:
            raise KeyError(key)
        return ""

    def __iter__(self) -> Iterator[str]:
        return iter(())  # pysaml2 only lists them in a log line

    def __len__(self) -> int:
        return 0

    def __bool__(self) -> bool:
        return True  # pysaml2 replaces an empty (falsy) mapping with {}


class SAMLProvider:
    """One ``saml`` provider: its pysaml2 service provider, built from the two metadata."""

    def __init__(self, provider: Provider, *, xmlsec_binary: str | None = None) -> None:
        saml2 = _import_saml2()
        self.provider = provider
        self._prefix = f"AUTH_{provider.name.upper()}_"
        sp_xml = provider.sp_metadata or ""
        self.entity_id, self.acs_urls = self._read_sp_metadata(saml2, sp_xml)
        self.metadata_xml = sp_xml.encode()
        #: Whether we have a key: AuthnRequests are signed, encrypted assertions decrypted.
        self.signs = provider.sp_key_file is not None and provider.sp_cert_file is not None
        config = self._sp_config(self._xmlsec(saml2, xmlsec_binary), self._key_pair())
        self.client, metadata, self.idp_entity_id = self._load(saml2, config)
        self.slo_url = self._check_idp(metadata, self.idp_entity_id)
        # pysaml2's client keeps per-user state; one request at a time keeps it consistent.
        self.lock = threading.Lock()
        quiet = logging.getLogger("saml2")
        if quiet.level == logging.NOTSET:
            # pysaml2 logs whole SAML messages (bearer assertions) at DEBUG: not by default.
            quiet.setLevel(logging.INFO)

    def _read_sp_metadata(self, saml2: Any, sp_xml: str) -> tuple[str, tuple[str, ...]]:
        """Our entity ID and HTTP-POST assertion consumer service addresses."""
        prefix = self._prefix
        try:
            sp = saml2.md.entity_descriptor_from_string(sp_xml)
        except Exception:
            sp = None
        descriptors = list(getattr(sp, "spsso_descriptor", None) or ())
        if sp is None or not sp.entity_id or not descriptors:
            raise ConfigError(
                f"{prefix}SP_metadata must be an EntityDescriptor with an SPSSODescriptor"
            )
        acs = [
            str(service.location)
            for d in descriptors
            for service in (d.assertion_consumer_service or ())
            if service.binding == _POST and service.location
        ]
        if not acs:
            raise ConfigError(f"{prefix}SP_metadata needs an HTTP-POST AssertionConsumerService")
        return str(sp.entity_id), tuple(acs)

    @staticmethod
    def _xmlsec(saml2: Any, xmlsec_binary: str | None) -> str:
        """The ``xmlsec1`` program signatures are checked with."""
        if xmlsec_binary is not None:
            return xmlsec_binary
        try:
            return str(saml2.sigver.get_xmlsec_binary())
        except Exception:
            raise ConfigError(
                "the saml driver needs the xmlsec1 program (apt install xmlsec1)"
            ) from None

    def _key_pair(self) -> dict[str, Any]:
        """pysaml2's key options: our PEM key and certificate, checked readable (none
        configured: no options)."""
        provider = self.provider
        if not self.signs:
            return {}
        for name, path in (("KEY", provider.sp_key_file), ("CERT", provider.sp_cert_file)):
            try:
                with open(str(path), "rb") as handle:
                    pem = handle.read(1 << 20)
            except OSError as exc:
                raise ConfigError(
                    f"{self._prefix}SP_{name}_FILE cannot be read: {type(exc).__name__}"
                ) from None
            if b"-----BEGIN " not in pem:
                raise ConfigError(f"{self._prefix}SP_{name}_FILE is not a PEM file")
        pair = {"key_file": provider.sp_key_file, "cert_file": provider.sp_cert_file}
        return {**pair, "encryption_keypairs": [pair]}

    def _sp_config(self, xmlsec_binary: str, keys: dict[str, Any]) -> dict[str, Any]:
        """pysaml2's service provider configuration."""
        return {
            **keys,
            "entityid": self.entity_id,
            "xmlsec_binary": xmlsec_binary,
            "metadata": {"inline": [self.provider.idp_metadata or ""]},
            "accepted_time_diff": CLOCK_SKEW_S,
            "allow_unknown_attributes": True,
            "service": {
                "sp": {
                    "endpoints": {
                        "assertion_consumer_service": [(url, _POST) for url in self.acs_urls],
                    },
                    "allow_unsolicited": self.provider.allow_unsolicited,
                    # A signature on the response or on the assertion, never neither.
                    "want_response_signed": False,
                    "want_assertions_signed": False,
                    "want_assertions_or_response_signed": True,
                    "authn_requests_signed": self.signs,
                },
            },
        }

    def _load(self, saml2: Any, config: dict[str, Any]) -> tuple[Any, Any, str]:
        """pysaml2's client, the metadata it read and the one IdP's entity ID."""
        prefix = self._prefix
        try:
            conf = saml2.config.SPConfig()
            conf.load(config)
            client = saml2.client.Saml2Client(config=conf)
            idps = list(conf.metadata.identity_providers())
        except Exception as exc:
            log.warning("%sIDP_metadata unusable: %s", prefix, type(exc).__name__)
            raise ConfigError(f"{prefix}IDP_metadata is not usable SAML metadata") from None
        if len(idps) != 1:
            raise ConfigError(f"{prefix}IDP_metadata must describe exactly one IdP")
        return client, conf.metadata, str(idps[0])

    def _check_idp(self, mds: Any, idp: str) -> str | None:
        """The IdP's single logout address, if any, once its metadata is seen to have a
        signing certificate and an HTTP-Redirect single sign-on service."""
        prefix = self._prefix
        if not mds.certs(idp, "idpsso", use="signing"):
            raise ConfigError(f"{prefix}IDP_metadata has no signing certificate")
        try:
            sso = mds.single_sign_on_service(idp, _REDIRECT)
        except Exception:
            sso = None
        if not sso:
            raise ConfigError(f"{prefix}IDP_metadata needs an HTTP-Redirect SingleSignOnService")
        try:
            slo = mds.single_logout_service(idp, _REDIRECT, "idpsso")
        except Exception:
            slo = None
        location: str | None = slo[0].get("location") if slo else None
        return location


def _bound(provider: str, relay_state: str) -> bytes:
    # What the request ID is signed together with but does not carry: the provider and the
    # RelayState it was sent with (a provider name has no NUL; an allowed redirect neither).
    return f"{provider}\0{relay_state}\0".encode("utf-8", "replace")


class SAMLLogin:
    """Both halves of the SAML login for the configured ``saml`` providers."""

    def __init__(
        self,
        service: AuthService,
        providers: tuple[Provider, ...],
        once: OnceStore | AsyncOnceStore,
        *,
        store_call: Callable[..., Flow[Any]] | None = None,
        signing: SignedValues | None = None,
    ) -> None:
        settings = service.settings
        self.service = service
        self.once = once
        self.public_url = (settings.public_url or "").rstrip("/") or None
        self.providers = {p.name: SAMLProvider(p) for p in providers if p.driver == "saml"}
        if self.providers:
            check_user_store(service.users)
        if signing is None:
            signing = SignedValues(settings.secret_bytes, clock=service.clock)
        self._requests = signing.timestamp_signer(REQUEST_PURPOSE)
        self._store_call = store_call if store_call is not None else service._store

    def provider(self, name: str) -> SAMLProvider | None:
        return self.providers.get(name)

    # -- request IDs --------------------------------------------------------------------------

    def request_id(self, provider: Provider, relay_state: str) -> str:
        """A fresh ``AuthnRequest`` ID that proves itself (see the module docstring):
        ``_<nonce>.<time>.<signature>``, an XML ``ID`` (an NCName)."""
        bound = _bound(provider.name, relay_state)
        signed = self._requests.sign(bound + secrets.token_hex(12).encode())
        return "_" + signed[len(bound) :].decode()

    def is_our_request(self, provider: Provider, relay_state: str, request_id: str) -> bool:
        """Whether ``request_id`` is one :meth:`request_id` made for ``provider`` and
        ``relay_state`` no longer than ``AUTH_<P>_LOGIN_TIMEOUT`` ago."""
        if not request_id.startswith("_") or not request_id.isascii():
            return False
        signed = _bound(provider.name, relay_state) + request_id[1:].encode()
        try:
            # Whole seconds: a signature age (an int) exceeds t exactly when it exceeds floor(t).
            self._requests.unsign(signed, max_age=provider.login_timeout_ms // 1000)
        except BadData:
            return False
        return True

    # -- step 1: to the IdP -------------------------------------------------------------------

    def start(self, saml: SAMLProvider, redirect: str | None) -> str:
        """The IdP's single sign-on URL with our ``AuthnRequest`` (HTTP-Redirect binding)."""
        provider = saml.provider
        if not is_login_redirect_allowed(redirect, provider.redirect_allow_list, self.public_url):
            raise invalid_payload(f'URL "{redirect}" can\'t be used to redirect after login')
        relay_state = redirect or ""
        message_id = self.request_id(provider, relay_state)
        with saml.lock:
            _, info = saml.client.prepare_for_authenticate(
                entityid=saml.idp_entity_id,
                relay_state=relay_state,
                binding=_REDIRECT,
                message_id=message_id,
                sign=saml.signs,
                sigalg=_RSA_SHA256 if saml.signs else None,
            )
        location = dict(info["headers"]).get("Location")
        if not isinstance(location, str):
            raise service_unavailable("saml", "No single sign-on address")
        return location

    # -- step 2: back from the IdP ------------------------------------------------------------

    def verify(self, saml: SAMLProvider, response: str, relay_state: str) -> Assertion:
        """The assertion of a base64 ``SAMLResponse``, verified; raises 401. Blocking (it runs
        ``xmlsec1``)."""
        if not response or len(response) > MAX_RESPONSE_CHARS:
            raise invalid_credentials()
        try:
            base64.b64decode("".join(response.split()), validate=True)
        except (binascii.Error, ValueError):
            raise invalid_credentials() from None
        provider = saml.provider.name
        issued = _IssuedRequests(lambda rid: self.is_our_request(saml.provider, relay_state, rid))
        try:
            with saml.lock:
                parsed = saml.client.parse_authn_request_response(
                    response, _POST, outstanding=issued
                )
                if parsed is not None and parsed.name_id is not None:
                    # pysaml2 remembers each subject in memory; tokenguard does not need it.
                    saml.client.users.remove_person(parsed.name_id)
        except Exception as exc:
            log.warning("SAML response for %s refused: %s", provider, type(exc).__name__)
            raise invalid_credentials() from None
        assertion = getattr(parsed, "assertion", None) if parsed is not None else None
        # Exactly one (verified, decrypted) assertion, as saml2int has it.
        count = len(getattr(parsed, "assertions", None) or ())
        if assertion is None or not getattr(assertion, "id", None) or count != 1:
            log.warning("SAML response for %s has no usable assertion", provider)
            raise invalid_credentials()
        in_response_to = parsed.in_response_to
        if not saml.provider.allow_unsolicited and not (
            isinstance(in_response_to, str)
            and self.is_our_request(saml.provider, relay_state, in_response_to)
        ):
            raise invalid_credentials()  # pysaml2 checked it too; fail closed if it did not
        attributes: dict[str, tuple[str, ...]] = {}
        for statement in assertion.attribute_statement or ():
            for attribute in statement.attribute or ():
                values = tuple(
                    v.text.strip()
                    for v in attribute.attribute_value or ()
                    if isinstance(getattr(v, "text", None), str)
                )
                if attribute.name:
                    attributes[str(attribute.name)] = attributes.get(attribute.name, ()) + values
        name_id = getattr(getattr(assertion, "subject", None), "name_id", None)
        return Assertion(
            id=str(assertion.id),
            in_response_to=in_response_to if isinstance(in_response_to, str) else None,
            not_on_or_after=int(parsed.not_on_or_after or 0),
            name_id=(name_id.text or "").strip() or None if name_id is not None else None,
            name_id_format=getattr(name_id, "format", None),
            attributes=attributes,
        )

    def finish(
        self, saml: SAMLProvider, form: Mapping[str, str], client: ClientInfo
    ) -> Flow[tuple[Tokens, str | None]]:
        """Tokens for the user the IdP vouches for, and where to send the browser.
        Raises :class:`~tokenguard.auth.drivers.sso.SSOFailure` (its ``redirect`` only when the
        ``RelayState`` is an allowed address)."""
        provider = saml.provider
        relay_state = form.get("RelayState") or ""
        redirect: str | None = None
        try:
            if relay_state:
                if not is_login_redirect_allowed(
                    relay_state, provider.redirect_allow_list, self.public_url
                ):
                    raise invalid_payload(
                        f'URL "{relay_state}" can\'t be used to redirect after login'
                    )
                redirect = relay_state
            assertion: Assertion = yield Call(
                self.verify, (saml, form.get("SAMLResponse") or "", relay_state), blocking=True
            )
            yield from self._claim_once(saml, assertion)
            user = yield from self._user_for(saml, assertion)
            mode = cast(Mode, provider.mode)  # one of MODES, checked by load_providers
            tokens = yield from self.service.start_session(user, mode, client)
        except AuthError as error:
            log.info("SAML login through %s refused: %s", provider.name, error.code)
            yield from self.service.audit.emit(
                "login", "failure", client, provider=provider.name, reason=error.code
            )
            raise SSOFailure(error, redirect) from None
        log.info("SAML login through %s: user %s", provider.name, user.id)
        return tokens, redirect

    def _claim_once(self, saml: SAMLProvider, assertion: Assertion) -> Flow[None]:
        """Refuse an assertion (or a request) already used: its ID is claimed until it could
        no longer be accepted (its ``NotOnOrAfter``, or the request's expiry, plus the skew)."""
        provider = saml.provider
        now_ms = int(self.service.clock() * 1000)
        skew_ms = CLOCK_SKEW_S * 1000
        if assertion.not_on_or_after:
            ttl = assertion.not_on_or_after * 1000 - now_ms + skew_ms
        elif assertion.in_response_to is not None:
            ttl = provider.login_timeout_ms + skew_ms
        else:
            log.warning("unsolicited SAML assertion for %s without NotOnOrAfter", provider.name)
            raise invalid_credentials()
        ttl = max(1000, min(ttl, _MAX_REPLAY_TTL_MS))
        keys = [f"saml:{provider.name}:assertion:{assertion.id}"]
        if assertion.in_response_to is not None:
            keys.append(f"saml:{provider.name}:request:{assertion.in_response_to}")
            ttl = max(ttl, provider.login_timeout_ms + skew_ms)
        for key in keys:
            fresh = yield from self._store_call(self.once.claim, key, ttl, now_ms)
            if not fresh:
                log.warning("replayed SAML assertion for %s refused", provider.name)
                raise invalid_credentials()

    def _user_for(self, saml: SAMLProvider, assertion: Assertion) -> Flow[User]:
        identity = identity_from_assertion(saml.provider, assertion)
        if identity is None:
            log.warning("[SAML] no user identifier for provider %s", saml.provider.name)
            raise invalid_credentials()
        return (
            yield from user_for_identity(
                self.service.users,
                identity,
                saml.provider.registration,
                changed=self.service.user_changed,
            )
        )

    # -- logout -------------------------------------------------------------------------------

    def logout_location(self, saml: SAMLProvider, name_id: str | None) -> str | None:
        """The IdP's single logout URL with a ``LogoutRequest`` for ``name_id``, or ``None``
        when the IdP has none or the subject is unknown."""
        if saml.slo_url is None or not name_id:
            return None
        from saml2.saml import NameID  # type: ignore[import-untyped]

        try:
            with saml.lock:
                _, request = saml.client.create_logout_request(
                    saml.slo_url, saml.idp_entity_id, name_id=NameID(text=name_id[:256])
                )
                info = saml.client.apply_binding(_REDIRECT, str(request), saml.slo_url)
        except Exception as exc:
            log.warning(
                "SAML logout request for %s failed: %s", saml.provider.name, type(exc).__name__
            )
            return None
        location = dict(info["headers"]).get("Location")
        return location if isinstance(location, str) else None


def _first(attributes: Mapping[str, tuple[str, ...]], key: str | None) -> str | None:
    if not key:
        return None
    values = attributes.get(key) or ()
    return values[0] if values and values[0] else None


def identity_from_assertion(provider: Provider, assertion: Assertion) -> ExternalIdentity | None:
    """The identity in a verified assertion: the identifier attribute (lower-cased, as
    Directus keeps it), else a persistent NameID; ``None`` when there is neither."""
    identifier = _first(assertion.attributes, provider.identifier_key)
    if identifier is None and assertion.name_id and assertion.name_id_format != _TRANSIENT:
        identifier = assertion.name_id
    if identifier is None:
        return None
    role = None
    if provider.role_mapping:
        # As for the other providers: the groups attribute (AUTH_<P>_GROUP_CLAIM_NAME).
        groups = assertion.attributes.get(provider.group_claim_name, ())
        role = mapped_role(list(groups), dict(provider.role_mapping))
    return ExternalIdentity(
        provider=provider.name,
        identifier=identifier.lower(),
        email=_first(assertion.attributes, provider.email_key),
        first_name=_first(assertion.attributes, provider.first_name_key),
        last_name=_first(assertion.attributes, provider.last_name_key),
        role=role,
    )


def check_acs_url(saml: SAMLProvider, public_url: str | None, auth_prefix: str) -> None:
    """Warn when no ACS address of the SP metadata is this provider's ACS route."""
    expected = f"{auth_prefix}/login/{saml.provider.name}/acs"
    if not any(urlsplit(url).path.rstrip("/") == expected for url in saml.acs_urls):
        log.warning(
            "AUTH_%s_SP_metadata: no AssertionConsumerService at %s%s",
            saml.provider.name.upper(),
            public_url or "",
            expected,
        )
