"""Sending mail: a tiny :class:`Mailer` interface, an SMTP implementation (standard library)
and a console one for development.

Password-reset mail is sent in the background (:class:`BackgroundMailer`), as Directus does:
the request answers after the same stall whether or not a mail went out, and a slow or
failing mail server can neither be timed nor surface to the client. Failures are logged
without the message (it carries a reset link).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol, TextIO, runtime_checkable

from ..config import Settings
from ..errors import ConfigError

__all__ = [
    "BackgroundMailer",
    "ConsoleMailer",
    "Mail",
    "Mailer",
    "MemoryMailer",
    "SmtpMailer",
    "mailer_from_settings",
]

log = logging.getLogger("tokenguard.mail")

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True, slots=True)
class Mail:
    """One plain-text message."""

    to: str
    subject: str
    text: str

    def __repr__(self) -> str:  # the text may hold a reset link
        return f"Mail(to=<redacted>, subject={self.subject!r})"

    def as_message(self, sender: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = self.to
        message["Subject"] = self.subject
        message.set_content(self.text)
        return message


@runtime_checkable
class Mailer(Protocol):
    """Something that delivers a :class:`Mail` (may block; may raise)."""

    def send(self, mail: Mail) -> None: ...


class SmtpMailer:
    """Delivers through an SMTP server with :mod:`smtplib`.

    ``secure`` is TLS from the first byte (port 465); ``starttls`` upgrades a plain
    connection (port 587). Credentials are refused over a plain connection to anything but
    the local host, so that a password is never sent in clear over a network.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int | None = None,
        *,
        sender: str = "no-reply@example.com",
        user: str | None = None,
        password: str | None = None,
        secure: bool = False,
        starttls: bool = False,
        timeout: float = 10.0,
        context: ssl.SSLContext | None = None,
    ) -> None:
        if user and not (secure or starttls) and host not in _LOCAL_HOSTS:
            raise ConfigError(
                "EMAIL_SMTP_USER is set but neither EMAIL_SMTP_SECURE nor EMAIL_SMTP_STARTTLS: "
                "the password would travel in clear"
            )
        self.host = host
        self.port = port if port is not None else (465 if secure else 587 if starttls else 25)
        self.sender = sender
        self.user = user
        self._password = password
        self.secure = secure
        self.starttls = starttls
        self.timeout = timeout
        self.context = context

    def __repr__(self) -> str:
        return f"SmtpMailer(host={self.host!r}, port={self.port})"

    def send(self, mail: Mail) -> None:
        context = self.context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.secure:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.starttls:
                smtp.starttls(context=context)
            if self.user:
                smtp.login(self.user, self._password or "")
            smtp.send_message(mail.as_message(self.sender))


class ConsoleMailer:
    """Writes each message to a stream (standard error by default), for development only:
    the reset link is printed in full."""

    def __init__(self, stream: TextIO | None = None, *, sender: str = "no-reply@example.com"):
        self.stream = stream
        self.sender = sender
        self._lock = threading.Lock()

    def send(self, mail: Mail) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        with self._lock:
            # The text as written (not MIME-encoded), so that a link can be copied.
            stream.write(
                f"----- mail -----\nFrom: {self.sender}\nTo: {mail.to}\n"
                f"Subject: {mail.subject}\n\n{mail.text}\n----- end -----\n"
            )
            stream.flush()


class MemoryMailer:
    """Keeps every message in :attr:`outbox` (tests, demos)."""

    def __init__(self) -> None:
        self.outbox: list[Mail] = []
        self._lock = threading.Lock()

    def send(self, mail: Mail) -> None:
        with self._lock:
            self.outbox.append(mail)


class BackgroundMailer:
    """Sends through ``inner`` on a small thread pool; :meth:`send` returns at once."""

    def __init__(self, inner: Mailer, *, workers: int = 2) -> None:
        self.inner = inner
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tokenguard-mail")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def send(self, mail: Mail) -> None:
        try:
            future = self._pool.submit(self._deliver, mail)
        except RuntimeError:  # closed: a request that outlived shutdown must not fail with 500
            log.warning("mail not sent (%s): closed", type(self.inner).__name__)
            return
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _deliver(self, mail: Mail) -> None:
        try:
            self.inner.send(mail)
        except Exception as exc:
            # The class name only: an SMTP error may quote the message or the credentials.
            log.warning("mail not sent (%s): %s", type(self.inner).__name__, type(exc).__name__)

    def flush(self) -> None:
        """Wait for the messages queued so far (tests, shutdown)."""
        with self._lock:
            pending = list(self._pending)
        wait(pending)

    def close(self) -> None:
        """Send what is queued, then stop the worker threads (idempotent)."""
        self._pool.shutdown(wait=True)


def mailer_from_settings(settings: Settings) -> Mailer:
    """The mailer ``EMAIL_TRANSPORT`` names (not yet in the background)."""
    if settings.email_transport == "console":
        return ConsoleMailer(sender=settings.email_from)
    return SmtpMailer(
        settings.email_smtp_host,
        settings.email_smtp_port,
        sender=settings.email_from,
        user=settings.email_smtp_user,
        password=settings.email_smtp_password,
        secure=settings.email_smtp_secure,
        starttls=settings.email_smtp_starttls,
    )
