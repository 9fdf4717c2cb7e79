"""Local-mode bearer tokens: HS256 JWTs signed with a per-install dev key.

Used only on the embedded default, where the backend runs on loopback next to the app. Production
verifies Firebase ID tokens instead. The key comes from `SKEET_DEV_KEY` or a 0600 file in the user's
state directory (never from the repo), so `python -m backend_stub token USER_ID` and the server agree.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from pathlib import Path

DEFAULT_TTL_S = 12 * 3600
MIN_KEY_BYTES = 32  # an HMAC-SHA256 key shorter than this can be guessed offline from one token
_HEADER = {"alg": "HS256", "typ": "JWT"}


class InvalidToken(Exception):
    """The token is malformed, badly signed or expired; the message says which."""


class WeakKey(ValueError):
    """`SKEET_DEV_KEY` is too short to sign tokens safely; the message says how long it must be."""


def state_dir() -> Path:
    """Where Skeet keeps local state (SQLite store, dev key): `$SKEET_DATA_DIR` or XDG state home."""
    explicit = os.environ.get("SKEET_DATA_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "skeet"


def private_dir(path: Path) -> Path:
    """`path` created if needed and made 0700 (owner only): it holds every user's orders and the signing
    key. An existing directory with wider permissions is tightened, if it is ours."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(0o700)
    return path


def private_file(path: Path) -> None:
    """Make an existing file of ours 0600 if it is readable by others (state from older versions)."""
    info = path.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(0o600)


def check_key(key: bytes) -> bytes:
    """`key` if it is long enough to sign dev tokens; `WeakKey` otherwise."""
    if len(key) < MIN_KEY_BYTES:
        raise WeakKey(
            f"SKEET_DEV_KEY must be at least {MIN_KEY_BYTES} bytes (it is {len(key)}); "
            "unset it to use a random key kept in the state directory"
        )
    return key


def dev_key() -> bytes:
    """The dev signing key: `$SKEET_DEV_KEY` (at least 32 bytes, else `WeakKey`), else a random key
    created once in `state_dir()` (0600 in a 0700 directory)."""
    env = os.environ.get("SKEET_DEV_KEY")
    if env:
        return check_key(env.encode())
    path = state_dir() / "dev-key"
    private_dir(path.parent)
    try:
        key = path.read_bytes().strip()
        private_file(path)  # a key file left 0644 by an older version
        return key
    except FileNotFoundError:
        key = secrets.token_urlsafe(32).encode()
        # O_EXCL: two processes starting together agree on whichever key landed first.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes().strip()
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint(uid: str, *, key: bytes, ttl_s: int = DEFAULT_TTL_S, now: float | None = None) -> str:
    """A signed token for `uid`, valid `ttl_s` seconds."""
    if not uid or len(uid) > 128 or "/" in uid:
        raise ValueError("a user id is 1-128 characters without '/'")
    issued = int(now if now is not None else time.time())
    claims = {"sub": uid, "iat": issued, "exp": issued + ttl_s, "iss": "skeet-local"}
    signing_input = f"{_b64(json.dumps(_HEADER).encode())}.{_b64(json.dumps(claims).encode())}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(sig)}"


def verify(token: str, *, key: bytes, now: float | None = None) -> str:
    """The user id a valid token names; raises `InvalidToken` otherwise."""
    return verify_claims(token, key=key, now=now)[0]


def verify_claims(token: str, *, key: bytes, now: float | None = None) -> tuple[str, float]:
    """(user id, expiry in epoch seconds) of a valid token; raises `InvalidToken` otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("malformed token")
    signing_input = f"{parts[0]}.{parts[1]}"
    expected = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    try:
        given = _unb64(parts[2])
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: "[[[[…" claims
        raise InvalidToken("malformed token") from exc
    if not hmac.compare_digest(expected, given) or not isinstance(header, dict) or header.get("alg") != "HS256":
        raise InvalidToken("bad token signature")
    if not isinstance(claims, dict) or not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise InvalidToken("token names no user")
    # Signed is not well-formed: an `exp` that is a string, a list, a bool or NaN is refused, not a 500.
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float) or exp != exp:
        raise InvalidToken("token has no valid expiry")
    if exp < (now if now is not None else time.time()):
        raise InvalidToken("token expired")
    return claims["sub"], float(exp)
