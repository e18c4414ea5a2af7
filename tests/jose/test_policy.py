"""The token policy: what Settings hand to jose, and jose's independence from settings."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.helpers.tokens import LONG_SECRET, SECRET
from tokenguard.app import TokenGuard
from tokenguard.config import Settings, token_policy
from tokenguard.errors import ConfigError
from tokenguard.jose.policy import TokenPolicy
from tokenguard.jose.tokens import TokenVerifier, issue_access_token

JOSE = Path(__file__).resolve().parents[2] / "src" / "tokenguard" / "jose"


def _ec_keys() -> str:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return json.dumps({"active": "k1", "keys": [{"kid": "k1", "pem": pem.decode()}]})


def test_policy_carries_the_token_settings() -> None:
    settings = Settings(
        secret=LONG_SECRET,
        algorithm="HS384",
        issuer="me",
        audience="api",
        leeway_ms=2_500,
        allow_tokens_without_exp=True,
        max_token_length=2048,
    )
    policy = token_policy(settings)
    assert policy == TokenPolicy(
        secret=LONG_SECRET.encode(),
        algorithm="HS384",
        issuer="me",
        audience="api",
        leeway_s=2.5,
        require_exp=False,
        max_length=2048,
        accept_hmac=True,
        keys=None,
    )


def test_policy_repr_never_prints_the_secret() -> None:
    assert SECRET not in repr(token_policy(Settings(secret=SECRET)))


def test_policy_refuses_an_algorithm_the_fast_path_cannot_check() -> None:
    with pytest.raises(ConfigError):
        TokenPolicy(secret=SECRET.encode(), algorithm="RS256")


def test_issuer_and_verifier_share_one_key_ring() -> None:
    # The ring holds the remote JWKS state: one per configuration, whoever builds the policy.
    settings = Settings(secret=SECRET, jwt_keys=_ec_keys())
    core = TokenGuard(settings)
    ring = core.guard.verifier.keys
    assert ring is not None and ring.active is not None
    assert core.auth.token_policy.keys is ring
    assert token_policy(settings).keys is ring


def test_a_policy_built_by_hand_issues_and_verifies() -> None:
    policy = TokenPolicy(secret=SECRET.encode(), issuer="hand", leeway_s=0.0)
    token = issue_access_token(
        policy, user_id="u", role=None, app_access=True, admin_access=False, ttl_ms=60_000,
        now=time.time(),
    )
    claims = TokenVerifier(policy).verify(token, time.time())
    assert isinstance(claims, dict) and claims["iss"] == "hand"


def test_jose_imports_no_settings() -> None:
    # jose is below config: a policy comes in, nothing is read from Settings or the environment.
    for path in JOSE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                assert "config" not in module.split("."), f"{path.name} imports {module}"
                if node.level == 2:  # from .. import x: only errors lies above jose
                    assert module == "errors", f"{path.name} imports ..{module}"
            elif isinstance(node, ast.Import):
                assert all("tokenguard" not in alias.name for alias in node.names), path.name
