"""Mailers: SMTP against a tiny SMTP server on 127.0.0.1, console output, background sending."""

from __future__ import annotations

import io
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.helpers.auth import SECRET
from tokenguard.auth.mail import (
    BackgroundMailer,
    ConsoleMailer,
    Mail,
    MemoryMailer,
    SmtpMailer,
    mailer_from_settings,
)
from tokenguard.config import Settings
from tokenguard.errors import ConfigError


class _SMTPHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: SMTPServer = self.server  # type: ignore[assignment]
        self.wfile.write(b"220 test ESMTP\r\n")
        data: list[bytes] | None = None
        envelope: dict[str, object] = {"rcpt": []}
        while True:
            line = self.rfile.readline()
            if not line:
                return
            if data is not None:
                if line == b".\r\n":
                    envelope["data"] = b"".join(data)
                    server.messages.append(envelope)
                    envelope = {"rcpt": []}
                    data = None
                    self.wfile.write(b"250 OK\r\n")
                else:
                    data.append(line)
                continue
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 test\r\n")
            elif verb == b"MAIL":
                envelope["from"] = line.decode().strip()
                self.wfile.write(b"250 OK\r\n")
            elif verb == b"RCPT":
                envelope["rcpt"].append(line.decode().strip())  # type: ignore[union-attr]
                self.wfile.write(b"250 OK\r\n")
            elif verb == b"DATA":
                data = []
                self.wfile.write(b"354 go on\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"502 no\r\n")


class SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SMTPHandler)
        self.messages: list[dict[str, object]] = []


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    server = SMTPServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


MAIL = Mail("ada@example.com", "Password Reset Request", "Follow https://x/reset?token=abc\n")


def test_smtp_delivers(smtp: SMTPServer) -> None:
    mailer = SmtpMailer("127.0.0.1", smtp.server_address[1], sender="noreply@example.com")
    mailer.send(MAIL)
    [message] = smtp.messages
    assert str(message["from"]).upper() == "MAIL FROM:<NOREPLY@EXAMPLE.COM>"
    assert [str(r).upper() for r in message["rcpt"]] == ["RCPT TO:<ADA@EXAMPLE.COM>"]  # type: ignore[union-attr]
    data = message["data"]
    assert isinstance(data, bytes)
    assert b"Subject: Password Reset Request" in data and b"token=abc" in data


def test_background_mailer_sends_and_swallows_failures(
    smtp: SMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    mailer = BackgroundMailer(SmtpMailer("127.0.0.1", smtp.server_address[1]))
    mailer.send(MAIL)
    mailer.flush()
    assert len(smtp.messages) == 1
    broken = BackgroundMailer(SmtpMailer("127.0.0.1", 1, timeout=1))  # nothing listens on port 1
    broken.send(MAIL)
    broken.flush()
    assert "mail not sent" in caplog.text
    assert "token=abc" not in caplog.text
    mailer.close()
    broken.close()


def test_credentials_never_travel_in_clear_over_a_network() -> None:
    with pytest.raises(ConfigError, match="in clear"):
        SmtpMailer("smtp.example.com", user="u", password="p")
    SmtpMailer("smtp.example.com", user="u", password="p", starttls=True)
    SmtpMailer("localhost", user="u", password="p")
    assert SmtpMailer("h", secure=True).port == 465
    assert SmtpMailer("h", starttls=True).port == 587
    assert SmtpMailer("h").port == 25
    assert "hunter2" not in repr(SmtpMailer("localhost", user="u", password="hunter2"))


def test_console_and_memory() -> None:
    stream = io.StringIO()
    ConsoleMailer(stream, sender="me@example.com").send(MAIL)
    assert "To: ada@example.com" in stream.getvalue() and "token=abc" in stream.getvalue()
    memory = MemoryMailer()
    memory.send(MAIL)
    assert memory.outbox == [MAIL]
    assert "token" not in repr(MAIL) and "ada" not in repr(MAIL)


def test_settings_choose_the_transport() -> None:
    console = mailer_from_settings(Settings(secret=SECRET, email_transport="console"))
    assert isinstance(console, ConsoleMailer)
    smtp = mailer_from_settings(
        Settings.from_env(
            {
                "SECRET": SECRET,
                "EMAIL_SMTP_HOST": "mail.example.com",
                "EMAIL_SMTP_PORT": "2525",
                "EMAIL_SMTP_STARTTLS": "true",
            }
        )
    )
    assert isinstance(smtp, SmtpMailer) and (smtp.host, smtp.port, smtp.starttls) == (
        "mail.example.com",
        2525,
        True,
    )
    with pytest.raises(ConfigError):
        Settings(secret=SECRET, email_transport="sendmail")
    with pytest.raises(ConfigError):
        Settings(secret=SECRET, email_smtp_secure=True, email_smtp_starttls=True)
