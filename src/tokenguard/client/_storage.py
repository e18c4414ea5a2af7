"""Where a client keeps its login: the :class:`AuthData` value and two storages for it.

The shape is the one ``@directus/sdk`` keeps (``access_token``, ``refresh_token``,
``expires`` and ``expires_at``, both in milliseconds), so that what a Python worker stores
reads the same as what the JavaScript SDK stores. A storage only has to ``get`` and ``set``
that value; :class:`MemoryStorage` lives as long as the client, :class:`FileStorage` keeps
the login across runs of a CLI or a worker.

Tokens are secrets: :class:`AuthData` never shows them in its ``repr``, no storage logs
them, and :class:`FileStorage` writes its file atomically with ``0600`` permissions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["AsyncTokenStorage", "AuthData", "FileStorage", "MemoryStorage", "TokenStorage"]

log = logging.getLogger("tokenguard.client")

#: Larger files are not ours (a login is well under 8 KiB); refusing them bounds the read.
MAX_FILE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class AuthData:
    """One login: the tokens and when the access token expires.

    ``expires`` is the lifetime the server announced, in milliseconds; ``expires_at`` is the
    Unix time in milliseconds at which the access token expires (``None``: never known to
    expire, as with a static token). In ``session`` mode ``access_token`` holds the session
    cookie's value and ``refresh_token`` is ``None``; in ``cookie`` mode ``refresh_token``
    holds the refresh cookie's value.
    """

    access_token: str | None = None
    refresh_token: str | None = None
    expires: int | None = None
    expires_at: int | None = None

    def __repr__(self) -> str:
        def shown(token: str | None) -> str:
            return "None" if token is None else "'<redacted>'"

        return (
            f"AuthData(access_token={shown(self.access_token)}, "
            f"refresh_token={shown(self.refresh_token)}, "
            f"expires={self.expires!r}, expires_at={self.expires_at!r})"
        )

    @property
    def empty(self) -> bool:
        """Whether this holds no token at all (logged out)."""
        return self.access_token is None and self.refresh_token is None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the SDK's storage shape)."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires": self.expires,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_dict(cls, data: Any) -> AuthData | None:
        """Read :meth:`to_dict`'s form back; ``None`` for anything else (a foreign file)."""
        if not isinstance(data, Mapping):
            return None

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        def number(key: str) -> int | None:
            value = data.get(key)
            # bool is an int subclass; a JSON true is not a time.
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None
            if value != value or value in (float("inf"), float("-inf")):
                return None
            return int(value)

        return cls(
            text("access_token"), text("refresh_token"), number("expires"), number("expires_at")
        )


@runtime_checkable
class TokenStorage(Protocol):
    """Keeps one :class:`AuthData` for a :class:`~tokenguard.client.Client`.

    ``get`` returns ``None`` when nothing is stored. ``set`` with an empty ``AuthData()``
    means "logged out" and may delete what was stored.
    """

    def get(self) -> AuthData | None: ...

    def set(self, data: AuthData) -> None: ...


class AsyncTokenStorage(Protocol):
    """The same as :class:`TokenStorage` with coroutine methods (for :class:`AsyncClient`)."""

    def get(self) -> Awaitable[AuthData | None]: ...

    def set(self, data: AuthData) -> Awaitable[None]: ...


class MemoryStorage:
    """Keeps the login in memory, for the life of the client (the default)."""

    def __init__(self, data: AuthData | None = None) -> None:
        self._data = data

    def get(self) -> AuthData | None:
        """The stored login, or ``None``."""
        return self._data

    def set(self, data: AuthData) -> None:
        """Replace the stored login."""
        self._data = None if data.empty else data

    def __repr__(self) -> str:
        return f"MemoryStorage({self._data!r})"


class FileStorage:
    """Keeps the login in a JSON file, so that it survives restarts.

    Writes go to a temporary file in the same directory (created ``0600``), are flushed to
    disk and then renamed over the target, so a reader never sees half a file and the
    tokens are never readable by other users, even for an instant. Logging out deletes the
    file. A file that cannot be read or is not ours reads as "not logged in", with a
    warning that names the file but never its content.

    ``path`` may start with ``~`` for the user's home directory.

    One file serves one client at a time: two processes refreshing the same refresh token
    would each rotate it, and tokenguard treats the reuse of a rotated token as theft.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        # "~/.myapp/login.json" means the home directory, as in a shell: left as it is,
        # pathlib would write a folder literally named "~" into the working directory.
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()

    def get(self) -> AuthData | None:
        """The stored login, or ``None`` when there is none (or it is unreadable)."""
        try:
            with self.path.open("rb") as handle:
                info = os.fstat(handle.fileno())
                if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                    log.warning(
                        "token file %s is accessible by other users; it should be 0600", self.path
                    )
                raw = handle.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("token file %s cannot be read: %s", self.path, type(exc).__name__)
            return None
        data = None
        if len(raw) <= MAX_FILE_BYTES:
            try:
                data = AuthData.from_dict(json.loads(raw.decode("utf-8")))
            except (UnicodeDecodeError, ValueError, RecursionError):
                data = None
        if data is None:
            log.warning("token file %s is not a tokenguard login; ignoring it", self.path)
        return None if data is None or data.empty else data

    def set(self, data: AuthData) -> None:
        """Store ``data`` atomically (``0600``); an empty ``AuthData()`` deletes the file."""
        with self._lock:
            if data.empty:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                return
            payload = json.dumps(data.to_dict(), separators=(",", ":")).encode()
            directory = self.path.parent
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            # mkstemp creates the file 0600 and exclusively: no window where it is readable.
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(payload)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._sync_directory(directory)

    @staticmethod
    def _sync_directory(directory: Path) -> None:
        # Makes the rename itself durable; not every platform lets a directory be opened.
        try:
            fd = os.open(directory, os.O_RDONLY)
        except OSError:
            return
        try:
            with contextlib.suppress(OSError):
                os.fsync(fd)
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        return f"FileStorage({str(self.path)!r})"
