"""A real SAML identity provider on 127.0.0.1: pysaml2's ``Server`` behind a tiny WSGI app.

Keys and certificates are made at start-up with ``cryptography`` (in a temporary directory,
never committed). ``GET /sso`` (HTTP-Redirect binding) reads the AuthnRequest and answers
with the HTTP-POST binding's auto-submitting form for :attr:`SAMLIdP.user`, as a real IdP
does once the user has signed in. :meth:`SAMLIdP.response` makes responses directly, with
every knob the abuse tests need (unsigned, another key, expired, another audience...).
"""

from __future__ import annotations

import base64
import datetime
import html
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.assertion import Policy
from saml2.config import IdPConfig
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_TRANSIENT, NameID
from saml2.server import Server
from saml2.sigver import get_xmlsec_binary

CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"


def make_key_pair(directory: Path, name: str) -> tuple[Path, Path, str]:
    """A fresh RSA key and self-signed certificate: (key file, cert file, cert base64)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"tokenguard test {name}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    key_file = directory / f"{name}.key"
    cert_file = directory / f"{name}.crt"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file.write_bytes(pem)
    body = b"".join(line for line in pem.splitlines() if b"-----" not in line).decode()
    return key_file, cert_file, body


def sp_metadata(entity_id: str, acs_url: str, cert: str | None = None) -> str:
    """Our metadata; with ``cert`` (base64 DER), for signing and encryption."""
    keys = ""
    if cert is not None:
        keys = "".join(
            f'<md:KeyDescriptor use="{use}"><ds:KeyInfo><ds:X509Data>'
            f"<ds:X509Certificate>{cert}</ds:X509Certificate>"
            "</ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
            for use in ("signing", "encryption")
        )
    signed = "true" if cert is not None else "false"
    return (
        f'<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="{DS}" entityID="{entity_id}">'
        f'<md:SPSSODescriptor AuthnRequestsSigned="{signed}" WantAssertionsSigned="true" '
        'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"{keys}"
        f"<md:NameIDFormat>{NAMEID_FORMAT_PERSISTENT}</md:NameIDFormat>"
        f'<md:AssertionConsumerService Binding="{BINDING_HTTP_POST}" Location="{acs_url}" '
        'index="0" isDefault="true"/>'
        "</md:SPSSODescriptor></md:EntityDescriptor>"
    )


def idp_metadata(entity_id: str, base_url: str, cert: str) -> str:
    return (
        f'<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="{DS}" entityID="{entity_id}">'
        '<md:IDPSSODescriptor WantAuthnRequestsSigned="false" '
        'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>'
        f"<ds:X509Certificate>{cert}</ds:X509Certificate>"
        "</ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        f'<md:SingleLogoutService Binding="{BINDING_HTTP_REDIRECT}" Location="{base_url}/slo"/>'
        f"<md:NameIDFormat>{NAMEID_FORMAT_PERSISTENT}</md:NameIDFormat>"
        f'<md:SingleSignOnService Binding="{BINDING_HTTP_REDIRECT}" Location="{base_url}/sso"/>'
        "</md:IDPSSODescriptor></md:EntityDescriptor>"
    )


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class SAMLIdP:
    """The IdP. ``sp_entity_id``/``acs_url`` name the service provider under test."""

    def __init__(
        self, directory: Path, sp_entity_id: str, acs_url: str, sp_cert: str | None = None
    ) -> None:
        self.sp_entity_id = sp_entity_id
        self.acs_url = acs_url
        self.httpd: WSGIServer = make_server("127.0.0.1", 0, self.app, handler_class=_Quiet)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.entity_id = self.url + "/idp"
        key, cert, cert_b64 = make_key_pair(directory, "idp")
        other_key, other_cert, _ = make_key_pair(directory, "other")
        self.metadata = idp_metadata(self.entity_id, self.url, cert_b64)
        self.sp_metadata = sp_metadata(sp_entity_id, acs_url, sp_cert)
        #: Another SP the IdP knows, for assertions meant for someone else.
        self.other_sp = "http://other-sp.example.org/sp"
        others = sp_metadata(self.other_sp, "http://other-sp.example.org/acs")
        self.server = self._server(key, cert, others)
        #: The same IdP identity with a key the SP does not know.
        self.impostor = self._server(other_key, other_cert, others)
        self.user: dict[str, list[str]] = {}
        self.name_id = "idp-user-1"
        self.name_id_format = NAMEID_FORMAT_PERSISTENT
        self.requests: list[Any] = []

    def _server(self, key: Path, cert: Path, others: str) -> Server:
        config = IdPConfig()
        config.load(
            {
                "entityid": self.entity_id,
                "xmlsec_binary": get_xmlsec_binary(),
                "key_file": str(key),
                "cert_file": str(cert),
                "metadata": {"inline": [self.sp_metadata, others]},
                "allow_unknown_attributes": True,
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [(self.url + "/sso", BINDING_HTTP_REDIRECT)],
                            "single_logout_service": [(self.url + "/slo", BINDING_HTTP_REDIRECT)],
                        },
                        "policy": {"default": {"lifetime": {"minutes": 5}}},
                        "name_id_format": [NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_TRANSIENT],
                    }
                },
            }
        )
        return Server(config=config)

    # -- responses ----------------------------------------------------------------------------

    def request_id(self, location: str) -> str:
        """The ID of the AuthnRequest in a redirect to our ``/sso``."""
        query = parse_qs(urlsplit(location).query)
        request = self.server.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT)
        self.requests.append(request.message)
        return str(request.message.id)

    def xml(
        self,
        in_response_to: str | None,
        *,
        sign_assertion: bool = True,
        sign_response: bool = False,
        impostor: bool = False,
        audience: str | None = None,
        destination: str | None = None,
        lifetime_minutes: float = 5,
        user: dict[str, list[str]] | None = None,
        encrypt: bool = False,
    ) -> str:
        """A SAML response (XML) for :attr:`user` or ``user``."""
        server = self.impostor if impostor else self.server
        sp = audience or self.sp_entity_id
        policy = Policy({"default": {"lifetime": {"minutes": lifetime_minutes}}}, server.metadata)
        response = server.create_authn_response(
            identity=user if user is not None else self.user,
            in_response_to=in_response_to,
            destination=destination or self.acs_url,
            sp_entity_id=sp,
            name_id=NameID(format=self.name_id_format, text=self.name_id),
            authn={
                "class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password",
                "authn_auth": self.entity_id,
            },
            sign_assertion=sign_assertion,
            sign_response=sign_response,
            release_policy=policy,
            # To the SP metadata's encryption certificate.
            encrypt_assertion=encrypt,
        )
        return str(response)

    def response(self, in_response_to: str | None, **options: Any) -> str:
        """:meth:`xml`, base64-encoded as the HTTP-POST binding carries it."""
        return base64.b64encode(self.xml(in_response_to, **options).encode()).decode()

    # -- the web app --------------------------------------------------------------------------

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if path == "/sso":
            try:
                request = self.server.parse_authn_request(
                    query["SAMLRequest"][0], BINDING_HTTP_REDIRECT
                )
            except Exception:
                start_response("400 Bad Request", [("content-type", "text/plain")])
                return [b"bad AuthnRequest"]
            message = request.message
            self.requests.append(message)
            destination = message.assertion_consumer_service_url or self.acs_url
            xml = self.xml(message.id, destination=destination)
            relay = query.get("RelayState", [""])[0]
            info = self.server.apply_binding(
                BINDING_HTTP_POST, xml, destination, relay, response=True
            )
            body = info["data"].encode() if isinstance(info["data"], str) else info["data"]
            start_response("200 OK", [("content-type", "text/html; charset=utf-8")])
            return [body]
        if path == "/slo":
            start_response("200 OK", [("content-type", "text/plain")])
            return [b"signed out"]
        start_response("404 Not Found", [("content-type", "text/plain")])
        return [b"not found"]

    def start(self) -> None:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def read_form(page: str) -> tuple[str, dict[str, str]]:
    """The action and the hidden fields of the IdP's auto-submitting HTTP-POST form."""
    action = re.search(r'<form[^>]*action="([^"]+)"', page)
    assert action is not None, page
    fields = {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(
            r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page
        )
    }
    return html.unescape(action.group(1)), fields


@contextmanager
def running_idp(
    directory: Path, sp_entity_id: str, acs_url: str, sp_cert: str | None = None
) -> Iterator[SAMLIdP]:
    idp = SAMLIdP(directory, sp_entity_id, acs_url, sp_cert)
    idp.start()
    try:
        yield idp
    finally:
        idp.stop()
