"""Who is calling: `TokenVerifier` turns a bearer token into a user id.

`LocalVerifier` checks Skeet's HS256 dev tokens (loopback only); `FirebaseVerifier` checks Firebase ID
tokens with firebase-admin (which talks to the Auth emulator when `FIREBASE_AUTH_EMULATOR_HOST` is set).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

from services.auth import devtoken

log = logging.getLogger(__name__)


class AuthError(Exception):
    """The request carries no usable identity; the message says why (never the token)."""


class AuthUnavailable(Exception):
    """The token cannot be checked right now (Google's certificates unreachable): not the caller's fault,
    so it is answered with 503, not 401 (a 401 would make the app sign the user out)."""


class AuthNotConfigured(Exception):
    """The configured identity provider cannot work here (Firebase without a project or credentials):
    the server refuses to start, with this message, rather than answer every request with an error."""


def require_google_credentials(setting: str, emulator: str) -> None:
    """`AuthNotConfigured`, naming `setting`, unless Application Default Credentials and a project id are
    found. Blocking (reads credential files, may ask the metadata server); call it at start."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        _, found_project = google.auth.default()
    except DefaultCredentialsError:
        raise AuthNotConfigured(
            f"{setting} needs Google credentials: run on Cloud Run with a service account, "
            f"or set GOOGLE_APPLICATION_CREDENTIALS (or use {emulator})"
        ) from None
    if not (found_project or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")):
        raise AuthNotConfigured(f"{setting} needs GOOGLE_CLOUD_PROJECT (the Google Cloud project id)")


class TokenVerifier(Protocol):
    """Verifies a bearer token; returns the user id or raises `AuthError` (or `AuthUnavailable`)."""

    async def verify(self, token: str) -> str: ...


class LocalVerifier:
    """Dev tokens signed with `devtoken.dev_key()`.

    A token that verified is remembered (up to `cache_size` of them, the oldest forgotten first) until its
    expiry: an app sends the same token with every request for hours, and checking its signature again
    (base64, two JSON documents, an HMAC) was ~5% of an order's CPU. Only tokens we signed get in, and
    the expiry is checked on every request as before."""

    def __init__(self, *, key: bytes, clock: Callable[[], float] = time.time, cache_size: int = 4096) -> None:
        self._key = key
        self._clock = clock
        self._cache_size = cache_size
        self._verified: dict[str, tuple[str, float]] = {}  # token → (uid, exp)

    async def verify(self, token: str) -> str:
        now = self._clock()
        known = self._verified.get(token)
        if known is not None:
            if known[1] >= now:
                return known[0]
            del self._verified[token]
        try:
            uid, exp = devtoken.verify_claims(token, key=self._key, now=now)
        except devtoken.InvalidToken as exc:
            raise AuthError(f"invalid token: {exc}") from None
        if len(self._verified) >= self._cache_size:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (uid, exp)
        return uid


class FirebaseVerifier:
    """Firebase ID tokens through `firebase_admin.auth.verify_id_token`.

    `app` is a firebase_admin App; by default the default app, initialised on first use (with anonymous
    credentials when only the Auth emulator is configured, as firebase-admin still wants some).
    """

    def __init__(self, *, app: Any = None, check_revoked: bool = False) -> None:
        self._app = app
        self._check_revoked = check_revoked

    def check_configured(self) -> None:
        """Fail now (`AuthNotConfigured`) if tokens could never be checked: no project id, or no Google
        credentials outside the Auth emulator. Blocking (reads credential files); call it at start."""
        if self._app is not None:
            return
        emulator = os.environ.get("FIREBASE_AUTH_EMULATOR_HOST")
        project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
        if emulator:
            if not project:
                raise AuthNotConfigured(
                    "SKEET_AUTH=firebase with FIREBASE_AUTH_EMULATOR_HOST needs GOOGLE_CLOUD_PROJECT "
                    "(the emulator's project id)"
                )
            return
        require_google_credentials("SKEET_AUTH=firebase", "the Auth emulator: FIREBASE_AUTH_EMULATOR_HOST")

    def _default_app(self) -> Any:
        import firebase_admin

        try:
            return firebase_admin.get_app()
        except ValueError:
            options = {}
            project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
            if project:
                options["projectId"] = project
            credential = None
            if os.environ.get("FIREBASE_AUTH_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                credential = _anonymous_credential(AnonymousCredentials())
            return firebase_admin.initialize_app(credential, options or None)

    async def verify(self, token: str) -> str:
        from firebase_admin import auth
        from google.auth.exceptions import GoogleAuthError

        try:
            if self._app is None:
                self._app = self._default_app()
            # Blocking: may fetch Google's public certificates over HTTP.
            claims = await asyncio.to_thread(
                auth.verify_id_token, token, app=self._app, check_revoked=self._check_revoked
            )
        except auth.UserDisabledError:
            raise AuthError("this account is disabled") from None
        except auth.InvalidIdTokenError as exc:
            raise AuthError(f"invalid token: {_firebase_reason(exc)}") from None
        except auth.CertificateFetchError:
            raise AuthUnavailable("cannot verify the token right now; try again shortly") from None
        except GoogleAuthError as exc:  # credentials missing or refused: ours to fix, not the caller's
            log.error("Firebase token check failed: %s", type(exc).__name__)
            raise AuthUnavailable("sign-in cannot be checked right now; try again later") from None
        except ValueError as exc:  # a malformed token, or an app without a project id
            if "project ID is required" in str(exc):
                log.error("Firebase token check failed: no project id")
                raise AuthUnavailable("sign-in cannot be checked right now; try again later") from None
            raise AuthError(f"invalid token: {_firebase_reason(exc)}") from None
        _check_times(claims, time.time())
        uid = claims.get("uid") or claims.get("sub")
        if not isinstance(uid, str) or not uid:
            raise AuthError("token names no user")
        return uid


CLOCK_SKEW_S = 0  # firebase-admin's default (`verify_id_token(clock_skew_seconds=0)`): production's rule


def _check_times(claims: dict[str, Any], now: float) -> None:
    """Expiry and issue time, checked here too: firebase-admin skips both for Auth-emulator tokens,
    and a test of the emulator path must not pass an expired token that production would refuse."""
    try:
        exp, iat = float(claims["exp"]), float(claims["iat"])
    except (KeyError, TypeError, ValueError):
        raise AuthError("invalid token: not a valid Firebase ID token") from None
    if exp < now - CLOCK_SKEW_S:
        raise AuthError("invalid token: token expired")
    if iat > now + CLOCK_SKEW_S:
        raise AuthError("invalid token: not a valid Firebase ID token")


def _firebase_reason(exc: Exception) -> str:
    from firebase_admin import auth

    if isinstance(exc, auth.ExpiredIdTokenError):
        return "token expired"
    if isinstance(exc, auth.RevokedIdTokenError):
        return "token revoked"
    return "not a valid Firebase ID token"


def _anonymous_credential(google_credentials: Any) -> Any:
    """A firebase_admin credential around google-auth's anonymous credentials (emulator use)."""
    from firebase_admin import credentials

    class Anonymous(credentials.Base):
        def get_credential(self) -> Any:
            return google_credentials

    return Anonymous()


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; `AuthError` when absent or malformed."""
    if not authorization:
        raise AuthError("missing Authorization header (expected 'Bearer <token>')")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization header must be 'Bearer <token>'")
    return token.strip()
