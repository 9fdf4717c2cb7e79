"""`LocalIdentity`: the embedded default's user, signed in without a network."""

from __future__ import annotations

import time

from services.auth import devtoken


class LocalIdentity:
    """Mints dev tokens for one local user with the install's dev key; refreshes before expiry."""

    mode = "Local user"

    def __init__(self, uid: str = "local", *, key: bytes | None = None, ttl_s: int = 3600) -> None:
        self.uid = uid
        self._key = key
        self._ttl_s = ttl_s
        self._token: str | None = None
        self._expires_at = 0.0

    async def token(self) -> str:
        now = time.time()
        if self._token is None or now > self._expires_at - 60:
            key = self._key or devtoken.dev_key()
            self._token = devtoken.mint(self.uid, key=key, ttl_s=self._ttl_s, now=now)
            self._expires_at = now + self._ttl_s
        return self._token
