from __future__ import annotations

import os

# Tests never pick up a developer's real configuration.
for _name in list(os.environ):
    if _name in {"SECRET", "REDIS", "DB_FILENAME", "PUBLIC_URL"} or _name.startswith(
        ("TOKENGUARD_", "ACCESS_TOKEN_", "REFRESH_TOKEN_", "SESSION_COOKIE_", "SESSION_REFRESH_")
    ):
        del os.environ[_name]
