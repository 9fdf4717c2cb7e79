"""`FirebaseIdentity`: email/password sign-in with Firebase Auth's REST API, and ID-token refresh.

Talks to Google (identitytoolkit / securetoken) or, with `emulator_host`, to the Auth emulator on the
same paths. The refresh token is handed to a `remember` callback (the OS keyring), never to a file.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

IDENTITY = "https://identitytoolkit.googleapis.com"
SECURETOKEN = "https://securetoken.googleapis.com"

# Firebase's error codes, in a trader's words.
MESSAGES = {
    "INVALID_LOGIN_CREDENTIALS": "Wrong email or password",
    "INVALID_PASSWORD": "Wrong email or password",
    "EMAIL_NOT_FOUND": "Wrong email or password",
    "INVALID_EMAIL": "That is not a valid email address",
    "USER_DISABLED": "This account is disabled",
    "TOO_MANY_ATTEMPTS_TRY_LATER": "Too many attempts: try again in a few minutes",
    "TOKEN_EXPIRED": "Your session expired: sign in again",
    "INVALID_REFRESH_TOKEN": "Your session expired: sign in again",
    "MISSING_PASSWORD": "Enter your password",
}


class SignInError(Exception):
    """Sign-in or refresh failed; the message is for the person signing in."""


class FirebaseIdentity:
    mode = "Firebase user"

    def __init__(
        self,
        *,
        api_key: str,
        emulator_host: str | None = None,
        remember: Callable[[str | None], Awaitable[None]] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if not api_key:
            raise SignInError("Firebase sign-in is not configured (no web API key)")
        self._key = api_key
        prefix = f"http://{emulator_host}/" if emulator_host else ""
        self._identity = f"{prefix}identitytoolkit.googleapis.com" if emulator_host else IDENTITY
        self._securetoken = f"{prefix}securetoken.googleapis.com" if emulator_host else SECURETOKEN
        self._remember = remember
        self._http = httpx.AsyncClient(timeout=timeout_s, transport=transport)
        self.emulated = emulator_host is not None
        self.uid: str | None = None
        self.email: str | None = None
        self._id_token: str | None = None
        self._refresh_token: str | None = None
        self._expires_at = 0.0

    @property
    def label(self) -> str:
        return f"{self.email or 'Firebase user'}{' (Auth emulator)' if self.emulated else ''}"

    async def sign_in(self, email: str, password: str) -> str:
        """Signs in; returns the user id. Raises `SignInError` with a readable reason."""
        body = await self._post(f"{self._identity}/v1/accounts:signInWithPassword",
                                json={"email": email.strip(), "password": password, "returnSecureToken": True})
        self._accept(body["idToken"], body["refreshToken"], body.get("expiresIn"), body["localId"],
                     body.get("email", email))
        if self._remember:
            await self._remember(self._refresh_token)
        return str(self.uid)

    async def resume(self, refresh_token: str) -> str:
        """Signs in again from a remembered refresh token (a new device session, no password)."""
        self._refresh_token = refresh_token
        await self._refresh()
        return str(self.uid)

    async def token(self) -> str:
        """A valid ID token, refreshed a few minutes before it expires."""
        if self._id_token is None:
            raise SignInError("Not signed in")
        if time.time() > self._expires_at - 300:
            await self._refresh()
        return self._id_token

    async def sign_out(self) -> None:
        self._id_token = self._refresh_token = None
        self.uid = None
        if self._remember:
            await self._remember(None)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _refresh(self) -> None:
        body = await self._post(f"{self._securetoken}/v1/token",
                                data={"grant_type": "refresh_token", "refresh_token": self._refresh_token or ""})
        self._accept(body["id_token"], body["refresh_token"], body.get("expires_in"), body["user_id"], self.email)

    def _accept(self, id_token: str, refresh: str, expires_in: Any, uid: str, email: str | None) -> None:
        self._id_token, self._refresh_token, self.uid, self.email = id_token, refresh, uid, email
        self._expires_at = time.time() + float(expires_in or 3600)

    async def _post(self, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.post(url, params={"key": self._key}, **kwargs)
        except httpx.HTTPError as exc:
            raise SignInError(f"Cannot reach Firebase Auth ({type(exc).__name__}): check the connection") from None
        if response.status_code == 200:
            return response.json()
        try:
            code = str(response.json()["error"]["message"]).split(" ")[0].split(":")[0]
        except (ValueError, KeyError, TypeError):
            code = f"HTTP {response.status_code}"
        raise SignInError(MESSAGES.get(code, f"Sign-in failed ({code})"))
