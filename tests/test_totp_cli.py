"""The command line's two-factor commands (`tfa enable|reset|disable`) and `users send-reset`."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pyotp
import pytest
from werkzeug.test import Client

from tests.helpers.auth import FAST, SECRET, plain_wsgi_app
from tokenguard import TokenGuard, TokenGuardWSGI, cli
from tokenguard.stores.sqlite import SQLiteSessionStore, SQLiteUserStore

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def db(tmp_path: Path) -> str:
    name = str(tmp_path / "app.db")
    store = SQLiteUserStore(name)
    from tokenguard.users import create_user

    create_user(store, EMAIL, password=PASSWORD)
    store.close() if hasattr(store, "close") else None
    return name


def run(
    capsys: pytest.CaptureFixture[str], db: str, *argv: str, **env: str
) -> tuple[int, str, str]:
    code = cli.main(["--db", db, *argv], environ={"SECRET": SECRET, **env})
    out, err = capsys.readouterr()
    return code, out, err


def fresh_code(totp: pyotp.TOTP) -> str:
    # This test runs on the real clock and codes are valid for their 30 s step only: never
    # take one in the last seconds of its step, where the server may already be in the next.
    left = 30 - time.time() % 30
    if left < 3:
        time.sleep(left + 0.1)
    return totp.now()


def app(db: str) -> Client:
    core = TokenGuard(
        secret=SECRET,
        users=SQLiteUserStore(db),
        sessions=SQLiteSessionStore(db),
        passwords=FAST,
        login_stall_ms=0,
        db_filename=db,
    )
    return Client(TokenGuardWSGI(plain_wsgi_app, guard=core))


def test_enable_prints_an_otpauth_url_and_login_then_needs_the_code(capsys, db: str) -> None:
    code, out, err = run(capsys, db, "tfa", "enable", EMAIL, "--issuer", "Acme")
    assert code == 0, err
    uri = out.strip()
    totp = pyotp.parse_uri(uri)
    assert totp.issuer == "Acme" and uri.startswith("otpauth://totp/Acme:ada@example.com?secret=")
    stored = SQLiteUserStore(db).get_by_email(EMAIL).tfa_secret
    assert stored.startswith("tg1.") and totp.secret not in stored
    client = app(db)
    refused = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert refused.json["errors"][0]["extensions"]["code"] == "INVALID_OTP"
    ok = client.post(
        "/auth/login", json={"email": EMAIL, "password": PASSWORD, "otp": fresh_code(totp)}
    )
    assert ok.status_code == 200
    # Enabling twice is refused; reset replaces the secret.
    assert run(capsys, db, "tfa", "enable", EMAIL)[0] == 1
    code, out2, _ = run(capsys, db, "tfa", "reset", EMAIL)
    assert code == 0 and pyotp.parse_uri(out2.strip()).secret != totp.secret
    code, _, err = run(capsys, db, "tfa", "disable", EMAIL)
    assert code == 0 and "disabled" in err
    assert (
        client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD}).status_code == 200
    )
    assert run(capsys, db, "tfa", "disable", EMAIL)[0] == 0  # nothing to do is not an error


def test_tfa_needs_the_app_secret(capsys, db: str) -> None:
    code = cli.main(["--db", db, "tfa", "enable", EMAIL], environ={})
    _, err = capsys.readouterr()
    assert code == 2 and "SECRET" in err


def test_send_reset_mails_a_working_link(capsys, db: str) -> None:
    code, out, err = run(
        capsys,
        db,
        "users",
        "send-reset",
        EMAIL,
        EMAIL_TRANSPORT="console",
        PUBLIC_URL="https://api.example.com",
    )
    assert code == 0, err
    assert out == ""
    token = re.search(
        r"https://api\.example\.com/admin/reset-password\?token=([\w.-]+)", err
    ).group(1)
    client = app(db)
    reply = client.post("/auth/password/reset", json={"token": token, "password": "a new password"})
    assert reply.status_code == 204
    login = client.post("/auth/login", json={"email": EMAIL, "password": "a new password"})
    assert login.status_code == 200


def test_send_reset_refusals(capsys, db: str) -> None:
    assert (
        run(capsys, db, "users", "send-reset", EMAIL, EMAIL_TRANSPORT="console")[0] == 2
    )  # no PUBLIC_URL
    code, _, err = run(
        capsys,
        db,
        "users",
        "send-reset",
        EMAIL,
        "--reset-url",
        "https://evil.example/x",
        EMAIL_TRANSPORT="console",
    )
    assert code == 2 and "PASSWORD_RESET_URL_ALLOW_LIST" in err
    assert (
        run(
            capsys,
            db,
            "users",
            "send-reset",
            "nobody@example.com",
            EMAIL_TRANSPORT="console",
            PUBLIC_URL="https://a.example",
        )[0]
        == 1
    )
    code, _, err = run(
        capsys,
        db,
        "users",
        "send-reset",
        EMAIL,
        PUBLIC_URL="https://a.example",
        EMAIL_SMTP_HOST="127.0.0.1",
        EMAIL_SMTP_PORT="1",
    )
    assert code == 1 and "could not be sent" in err
