"""Whether the Redis server holding the sessions keeps them across a restart.

A Redis that restarts empty logs everyone out: every session-mode cookie answers 401 and
every refresh token is unknown. That is a choice of the server's configuration (an AOF,
``appendonly yes``, or RDB snapshots, a non-empty ``save``), not of tokenguard, so tokenguard
only says so, once per process and URL, when the session store is chosen at start — never on
the request path.

The question is asked with ``CONFIG GET``, which managed services and hardened servers often
disable (``rename-command CONFIG ""``, an ACL without ``+config``): then nothing can be known
and nothing is said above DEBUG. A server unreachable at start is not an error here either:
the app starts, and the store answers 503 until Redis is back.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis

__all__ = ["warn_without_persistence"]

_log = logging.getLogger("tokenguard.stores.redis")
_checked: set[str] = set()
_lock = threading.Lock()

# Short: this runs once at start, and a Redis that does not answer must not hold the boot.
_TIMEOUT_S = 0.5


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _setting(reply: Any, name: str) -> str:
    """``name``'s value in a ``CONFIG GET`` reply (a mapping, or a flat list with RESP2)."""
    if isinstance(reply, dict):
        pairs = {_text(k): v for k, v in reply.items()}
    else:
        items = list(reply)
        pairs = {_text(k): v for k, v in zip(items[::2], items[1::2], strict=True)}
    return _text(pairs.get(name, ""))


def warn_without_persistence(url: str) -> bool:
    """Log one WARNING when the Redis server at ``url`` has neither an AOF nor RDB snapshots.

    Returns whether it warned. Asked once per process and URL; a server that refuses
    ``CONFIG`` is left alone (a DEBUG line). One that does not answer at all gets a WARNING of
    its own: the app still starts (Redis may come up later), but until it does every request
    that needs it answers 503, and the log should say why before the first login does.
    """
    with _lock:
        if url in _checked:
            return False
        _checked.add(url)
    from .redis import close_client, sync_client

    try:
        client, _ = sync_client(url, socket_connect_timeout=_TIMEOUT_S, socket_timeout=_TIMEOUT_S)
    except Exception as exc:  # a malformed URL is reported by the store itself
        _log.debug("Redis persistence not checked: %s", type(exc).__name__)
        return False
    try:
        appendonly = _setting(client.execute_command("CONFIG", "GET", "appendonly"), "appendonly")
        save = _setting(client.execute_command("CONFIG", "GET", "save"), "save")
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        _log.warning(
            "the Redis server holding the sessions (%s) does not answer at start (%s): requests "
            "that need it answer 503 until it does",
            _where(url),
            type(exc).__name__,
        )
        return False
    except Exception as exc:  # CONFIG renamed or forbidden
        _log.debug("Redis persistence not checked: %s: %s", type(exc).__name__, exc)
        return False
    finally:
        close_client(client)
    if appendonly == "yes" or save.strip():
        return False
    _log.warning(
        "the Redis server holding the sessions (%s) has no persistence (appendonly no, save "
        '""): a restart empties it and logs every user out; set appendonly yes to keep sessions',
        _where(url),
    )
    return True


def _where(url: str) -> str:
    """The server's address for a log line: host and port only, never the credentials."""
    from urllib.parse import urlsplit

    from .redis import parse_redis_url

    target = parse_redis_url(url)
    if target.nodes:
        return ", ".join(f"{host}:{port}" for host, port in target.nodes)
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname}:{parts.port or 6379}"
