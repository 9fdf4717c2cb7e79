"""`ExchangeKeyStore`: a user's exchange keys in the OS keyring, service "skeet".

Entries are `exchange-keys:{exchange}:{uid}` → `{"apiKey", "secret"}` JSON: the layout the local
backend's `KeyringExchangeKeys` reads, so keys saved in the app are the ones its live broker uses.
A machine with no keyring backend stores nothing: `NoSecureStore`, never a plain-text fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

SERVICE = "skeet"


class NoSecureStore(Exception):
    """There is no usable OS keyring here; the message says so in a trader's words."""


def mask(api_key: str) -> str:
    """What the UI may show of a key: its first and last four characters."""
    return f"{api_key[:4]}…{api_key[-4:]}" if len(api_key) > 10 else "…" * 3


async def keyring_call(name: str, service: str, *args: str) -> Any:
    """`keyring.<name>(service, *args)` off the event loop; no keyring is `NoSecureStore`."""
    import keyring
    import keyring.errors

    try:
        return await asyncio.to_thread(getattr(keyring, name), service, *args)
    except keyring.errors.NoKeyringError:
        raise NoSecureStore("No secure key store on this device (OS keyring): keys cannot be stored or read") from None
    except keyring.errors.KeyringError as exc:
        # The message names the failure's kind only: a keyring error could quote what it was given.
        raise NoSecureStore(f"The OS keyring failed ({type(exc).__name__})") from exc


def exchange_keys_entry(uid: str, exchange: str) -> str:
    """The keyring username under which a user's keys for an exchange live (app and backend alike)."""
    return f"exchange-keys:{exchange}:{uid}"


class ExchangeKeyStore:
    def __init__(self, uid: str, *, service: str = SERVICE) -> None:
        self._uid = uid
        self._service = service

    def username(self, exchange: str) -> str:
        return exchange_keys_entry(self._uid, exchange)

    async def available(self) -> bool:
        """Whether a real keyring backend exists (not keyring's "fail" or plain-text backends)."""
        def probe() -> bool:
            import keyring
            from keyring.backends import fail

            backend = keyring.get_keyring()
            return not isinstance(backend, fail.Keyring) and getattr(backend, "priority", 0) > 0

        try:
            return await asyncio.to_thread(probe)
        except Exception:  # a broken backend is no backend
            return False

    async def save(self, exchange: str, api_key: str, secret: str) -> str:
        if not api_key or not secret:
            raise ValueError("Enter both the API key and the secret")
        await self._call("set_password", self.username(exchange),
                         json.dumps({"apiKey": api_key, "secret": secret}))
        return mask(api_key)

    async def masked(self, exchange: str) -> str | None:
        text = await self._call("get_password", self.username(exchange))
        if not text:
            return None
        try:
            return mask(json.loads(text)["apiKey"])
        except (ValueError, KeyError, TypeError):
            return "unreadable — save the keys again"

    async def delete(self, exchange: str) -> None:
        import keyring.errors

        try:
            await self._call("delete_password", self.username(exchange))
        except NoSecureStore as exc:
            if not isinstance(exc.__cause__, keyring.errors.PasswordDeleteError):
                raise

    async def _call(self, name: str, *args: str) -> Any:
        return await keyring_call(name, self._service, *args)


class SecretSlot:
    """One named secret in the OS keyring (e.g. a refresh token): get, set, or clear with None."""

    def __init__(self, name: str, *, service: str = SERVICE) -> None:
        self._name = name
        self._service = service

    async def get(self) -> str | None:
        try:
            return await keyring_call("get_password", self._service, self._name)
        except NoSecureStore:
            return None

    async def set(self, value: str | None) -> None:
        """Keeps `value`, or forgets the secret with None. Best effort: with no keyring the secret is
        simply not kept (the user signs in again next time); it never goes anywhere else."""
        with contextlib.suppress(NoSecureStore):
            if value is None:
                await keyring_call("delete_password", self._service, self._name)
            else:
                await keyring_call("set_password", self._service, self._name, value)
