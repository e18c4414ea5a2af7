"""The one signed-value mechanism (itsdangerous): purposes, key rotation, tampering, expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers.auth import Clock
from tokenguard.auth.signed import BadData, SignedValues
from tokenguard.auth.totp import ENROL_PURPOSE, TwoFactor
from tokenguard.stores.memory import MemoryUserStore
from tokenguard.stores.once import MemoryOnceStore

OLD = b"an-old-secret-of-forty-bytes-Zq8Wv3Lm-Xp"
NEW = b"a-new-secret-of-forty-bytes-Kd2Rt7Nc-Yw"
PURPOSE = "tokenguard/test/v1"


def test_serializer_round_trip_and_expiry() -> None:
    clock = Clock(1_700_000_000)
    made = SignedValues(NEW, clock=clock).serializer(PURPOSE).dumps({"p": "idp", "r": None})
    reader = SignedValues(NEW, clock=clock).serializer(PURPOSE)
    assert reader.loads(made, max_age=300) == {"p": "idp", "r": None}
    clock.advance(300)
    assert reader.loads(made, max_age=300) == {"p": "idp", "r": None}
    clock.advance(1)
    with pytest.raises(BadData):
        reader.loads(made, max_age=300)


def test_a_value_signed_with_the_previous_secret_still_verifies_after_rotation() -> None:
    before = SignedValues(OLD)
    after = SignedValues(NEW, previous=[OLD])
    value = before.serializer(PURPOSE).dumps(["x"])
    assert after.serializer(PURPOSE).loads(value, max_age=60) == ["x"]
    signed = before.timestamp_signer(PURPOSE).sign(b"nonce")
    assert after.timestamp_signer(PURPOSE).unsign(signed, max_age=60) == b"nonce"
    mac = before.detached_mac(PURPOSE, 10).of(b"message")
    assert after.detached_mac(PURPOSE, 10).verifies(b"message", mac)


def test_the_newest_secret_signs() -> None:
    rotated = SignedValues(NEW, previous=[OLD])
    value = rotated.serializer(PURPOSE).dumps("v")
    assert SignedValues(NEW).serializer(PURPOSE).loads(value) == "v"
    with pytest.raises(BadData):
        SignedValues(OLD).serializer(PURPOSE).loads(value)
    mac = rotated.detached_mac(PURPOSE, 10).of(b"m")
    assert not SignedValues(OLD).detached_mac(PURPOSE, 10).verifies(b"m", mac)


def test_a_value_of_another_purpose_is_refused() -> None:
    signing = SignedValues(NEW)
    value = signing.serializer("tokenguard/sso-state/v1").dumps({"p": "idp"})
    with pytest.raises(BadData):
        signing.serializer("tokenguard/other/v1").loads(value)
    signed = signing.timestamp_signer("tokenguard/saml-request/v1").sign(b"n")
    with pytest.raises(BadData):
        signing.timestamp_signer("tokenguard/sso-state/v1").unsign(signed)
    mac = signing.detached_mac("tokenguard/tfa-enrol/v1", 10).of(b"m")
    assert not signing.detached_mac("tokenguard/other/v1", 10).verifies(b"m", mac)


def test_a_value_from_the_future_is_refused() -> None:
    clock = Clock(1_700_000_000)
    signed = SignedValues(NEW, clock=clock).timestamp_signer(PURPOSE).sign(b"n")
    clock.advance(-5)
    with pytest.raises(BadData):
        SignedValues(NEW, clock=clock).timestamp_signer(PURPOSE).unsign(signed, max_age=60)


@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_any_changed_byte_is_refused(position: int, replacement: int) -> None:
    signing = SignedValues(NEW)
    original = {"s": "state", "n": "nonce"}
    raw = bytearray(signing.serializer(PURPOSE).dumps(original).encode())
    index = position % len(raw)
    raw[index] = replacement
    try:
        loaded = signing.serializer(PURPOSE).loads(bytes(raw), max_age=60)
    except BadData:
        return
    # Only a change base64 ignores (the unused low bits of a last character) reads back.
    assert loaded == original


def test_a_detached_mac_has_its_size_and_refuses_changes() -> None:
    signer = SignedValues(NEW).detached_mac(PURPOSE, 10)
    mac = signer.of(b"user\0nonce")
    assert len(mac) == 10
    assert signer.verifies(b"user\0nonce", mac)
    assert not signer.verifies(b"user\0nonce!", mac)
    assert not signer.verifies(b"user\0nonce", bytes([mac[0] ^ 1]) + mac[1:])
    assert not signer.verifies(b"user\0nonce", mac[:9])


def test_the_timestamp_signer_makes_xml_ids() -> None:
    # A SAML request ID is "_" + this (less the bound prefix): an NCName.
    signed = SignedValues(NEW).timestamp_signer(PURPOSE).sign(b"0123456789abcdef01234567")
    assert re.fullmatch(r"_[A-Za-z0-9_.\-]+", "_" + signed.decode())


def test_enrolment_secrets_minted_before_itsdangerous_still_enable() -> None:
    # The enrolment MAC kept its key (HMAC-SHA256(SECRET, purpose)) and its message, so a
    # secret offered just before an upgrade is still accepted after it.
    factor = TwoFactor(NEW, MemoryUserStore(), MemoryOnceStore())
    key = hmac.new(NEW, ENROL_PURPOSE.encode(), hashlib.sha256).digest()
    nonce = bytes(range(10))
    mac = hmac.new(key, b"user-1\0" + nonce, hashlib.sha256).digest()[:10]
    legacy = base64.b32encode(nonce + mac).decode()
    assert factor.minted_for("user-1", legacy)
    assert not factor.minted_for("user-2", legacy)
    assert factor.minted_for("user-1", factor.mint_secret("user-1"))


def test_enrolment_secrets_survive_a_secret_rotation() -> None:
    before = TwoFactor(OLD, MemoryUserStore(), MemoryOnceStore())
    secret = before.mint_secret("user-1")
    after = TwoFactor(
        NEW, MemoryUserStore(), MemoryOnceStore(), signing=SignedValues(NEW, previous=[OLD])
    )
    assert after.minted_for("user-1", secret)
    assert not TwoFactor(NEW, MemoryUserStore(), MemoryOnceStore()).minted_for("user-1", secret)
