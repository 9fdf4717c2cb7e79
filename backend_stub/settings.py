"""`Settings`: the backend's configuration, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

from services.auth import devtoken

AuthMode = Literal["local", "firebase"]
StateMode = Literal["sqlite", "firestore"]
BrokerMode = Literal["paper", "ccxt"]
Role = Literal["all", "api", "worker"]  # SKEET_ROLE: one process for everything, or the split
BusMode = Literal["memory", "pubsub"]


class SettingsError(ValueError):
    """An environment variable holds a value the backend cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable. Build with `Settings.from_env()`; tests pass their own."""

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path(".")
    auth: AuthMode = "local"
    auth_emulator: str | None = (
        None  # FIREBASE_AUTH_EMULATOR_HOST: firebase-admin then trusts unsigned tokens
    )
    state: StateMode = "sqlite"
    feed: str = "synthetic"
    replay_speed: float = 1.0
    broker: BrokerMode = "paper"
    exchange: str = "binance"  # ccxt id, SKEET_BROKER=ccxt only
    gcp_project: str | None = None  # set: exchange keys come from Secret Manager, else the OS keyring
    # paper trading
    starting_balance: Decimal = Decimal("100000")
    quote_currency: str = "USDT"
    taker_fee: Decimal = Decimal("0.001")
    maker_fee: Decimal = Decimal("0.001")
    slippage: Decimal = Decimal("0.0005")  # fraction of the price a market order pays against itself
    max_open_orders: int = 200  # per trader; one more → 409
    # per-user token bucket on order writes
    rate_per_s: float = 20.0
    rate_burst: int = 40
    stream_ping_s: float = 15.0
    live_sync_s: float = 5.0  # live broker: how often open orders are followed on the exchange
    change_log_keep: int = 10_000  # SQLite: newest changes kept per user (older resumes get a snapshot)
    change_log_days: int = 7  # Firestore: log entries carry `expireAt` this far ahead, for a TTL policy
    # per-user token bucket on reads (GET), apart from writes so a read flood cannot starve orders
    read_rate_per_s: float = 50.0
    read_burst: int = 100
    # abuse limits of the HTTP edge (backend_stub/server.py, middleware.py)
    max_header_bytes: int = 16 * 1024  # request line + headers; more → 431
    header_timeout_s: float = 10.0  # the whole head must arrive within this; else 408 and closed
    max_body_bytes: int = 64 * 1024  # declared or streamed; more → 413 before it is read
    read_timeout_s: float = 10.0  # longest wait for the next piece of a body; else 408
    # admission: requests served at once, and how many may wait (briefly) for a turn; beyond → 503
    max_in_flight: int = 64
    max_queued: int = 256
    queue_wait_s: float = 1.0
    # many instances (backend_stub/workers): what this process is, the order-event bus, the leases
    role: Role = "all"
    bus: BusMode = "memory"
    pubsub_topic: str = "skeet-orders"
    worker_id: str = ""  # empty: a random one per process
    lease_ttl_s: float = 10.0  # a dead worker's symbols are taken over after at most this
    reconcile_s: float = 5.0  # a worker re-reads its symbols' open orders from the store this often
    # local auth: the dev signing key; None means `devtoken.dev_key()` (SKEET_DEV_KEY or the state dir)
    dev_key: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read `HOST`, `PORT` and the `SKEET_*` variables (see backend_stub/README.md)."""
        e = dict(os.environ if env is None else env)
        data_dir = e.get("SKEET_DATA_DIR")
        auth = _choice(e, "SKEET_AUTH", ("local", "firebase"))
        dev_key = None
        if auth == "local" and e.get("SKEET_DEV_KEY"):
            try:
                dev_key = devtoken.check_key(e["SKEET_DEV_KEY"].encode())
            except devtoken.WeakKey as exc:
                raise SettingsError(str(exc)) from None
        return cls(
            host=e.get("HOST", "127.0.0.1"),
            port=_int(e, "PORT", 8080),
            data_dir=Path(data_dir) if data_dir else devtoken.state_dir(),
            auth=auth,  # type: ignore[arg-type]
            auth_emulator=e.get("FIREBASE_AUTH_EMULATOR_HOST") or None,
            state=_choice(e, "SKEET_STATE", ("sqlite", "firestore")),  # type: ignore[arg-type]
            feed=_feed(e),
            replay_speed=float(_decimal(e, "SKEET_REPLAY_SPEED", "1")),
            broker=_choice(e, "SKEET_BROKER", ("paper", "ccxt")),  # type: ignore[arg-type]
            exchange=e.get("SKEET_EXCHANGE") or "binance",
            gcp_project=e.get("GOOGLE_CLOUD_PROJECT") or None,
            starting_balance=_decimal(e, "SKEET_PAPER_BALANCE", "100000"),
            taker_fee=_decimal(e, "SKEET_PAPER_TAKER_FEE", "0.001"),
            maker_fee=_decimal(e, "SKEET_PAPER_MAKER_FEE", "0.001"),
            slippage=_decimal(e, "SKEET_PAPER_SLIPPAGE", "0.0005"),
            max_open_orders=_at_least_one(e, "SKEET_MAX_OPEN_ORDERS", 200),
            rate_per_s=float(_decimal(e, "SKEET_RATE_PER_S", "20")),
            rate_burst=_int(e, "SKEET_RATE_BURST", 40),
            live_sync_s=float(_decimal(e, "SKEET_LIVE_SYNC_S", "5")),
            change_log_keep=_at_least_one(e, "SKEET_CHANGE_LOG_KEEP", 10_000),
            change_log_days=_at_least_one(e, "SKEET_CHANGE_LOG_DAYS", 7),
            read_rate_per_s=float(_decimal(e, "SKEET_READ_RATE_PER_S", "50")),
            read_burst=_int(e, "SKEET_READ_BURST", 100),
            max_header_bytes=_at_least_one(e, "SKEET_MAX_HEADER_BYTES", 16 * 1024),
            header_timeout_s=_positive(e, "SKEET_HEADER_TIMEOUT_S", "10"),
            max_body_bytes=_at_least_one(e, "SKEET_MAX_BODY_BYTES", 64 * 1024),
            read_timeout_s=_positive(e, "SKEET_READ_TIMEOUT_S", "10"),
            max_in_flight=_at_least_one(e, "SKEET_MAX_IN_FLIGHT", 64),
            max_queued=_int(e, "SKEET_MAX_QUEUED", 256),
            queue_wait_s=_positive(e, "SKEET_QUEUE_WAIT_S", "1"),
            role=_choice(e, "SKEET_ROLE", ("all", "api", "worker")),  # type: ignore[arg-type]
            bus=_choice(e, "SKEET_BUS", ("memory", "pubsub")),  # type: ignore[arg-type]
            pubsub_topic=e.get("SKEET_PUBSUB_TOPIC") or "skeet-orders",
            worker_id=e.get("SKEET_WORKER_ID") or "",
            lease_ttl_s=_positive(e, "SKEET_LEASE_TTL_S", "10"),
            reconcile_s=_positive(e, "SKEET_RECONCILE_S", "5"),
            dev_key=dev_key,
        )

    def __post_init__(self) -> None:
        if self.role != "all" and self.bus == "memory":
            raise SettingsError(
                f"SKEET_ROLE={self.role} runs the API and the workers in separate processes, which an "
                "in-process bus cannot connect: set SKEET_BUS=pubsub"
            )

    def check_bind(self) -> None:
        """Refuse local dev tokens on a non-loopback address: anyone could mint them from the repo's
        tooling, so they are only acceptable when the API is reachable from this machine alone."""
        if self.auth == "local" and not is_loopback(self.host):
            raise SettingsError(
                f"SKEET_AUTH=local accepts dev tokens, so the server must bind to loopback "
                f"(127.0.0.1, ::1 or localhost), not HOST={self.host}. "
                "Use SKEET_AUTH=firebase to serve on other interfaces."
            )
        if self.auth == "firebase" and self.auth_emulator and not is_loopback(self.host):
            raise SettingsError(
                "FIREBASE_AUTH_EMULATOR_HOST is set, so Firebase tokens are not checked against Google's "
                f"keys (the emulator's are unsigned): the server must bind to loopback, not HOST={self.host}."
            )


def is_loopback(host: str) -> bool:
    """Whether `host` names only this machine."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def _feed(env: dict[str, str]) -> str:
    """`SKEET_FEED`: a market source as `services.market.open_feed` reads it (checked here, opened later)."""
    raw = (env.get("SKEET_FEED") or "synthetic").strip()
    kind, _, rest = raw.partition(":")
    if kind in ("replay", "synthetic") or (kind in ("ccxt", "loopback") and rest):
        if kind == "synthetic" and rest and not rest.lstrip("-").isdigit():
            raise SettingsError(f"SKEET_FEED synthetic:SEED needs a whole-number seed; got {raw!r}")
        return raw
    raise SettingsError("SKEET_FEED must be synthetic, synthetic:SEED, replay, replay:PATH, ccxt:EXCHANGE or "
                        f"loopback:HOST:PORT; got {raw!r}")


def _at_least_one(env: dict[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise SettingsError(f"{name} must be at least 1, got {value}")
    return value


def _positive(env: dict[str, str], name: str, default: str) -> float:
    value = _decimal(env, name, default)
    if value <= 0:
        raise SettingsError(f"{name} must be more than 0, got {env.get(name)!r}")
    return float(value)


def _decimal(env: dict[str, str], name: str, default: str) -> Decimal:
    raw = env.get(name) or default
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not value.is_finite() or value < 0:
        raise SettingsError(f"{name} must be a finite number >= 0, got {raw!r}")
    return value


def _choice(env: dict[str, str], name: str, allowed: tuple[str, ...]) -> str:
    raw = env.get(name) or allowed[0]
    if raw not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}; got {raw!r}")
    return raw
