"""`CcxtBroker`: real orders on a real exchange through ccxt, with each user's own API keys.

The keys come from an `ExchangeKeys` source: Google Secret Manager on Cloud Run, the OS keyring on a
laptop; never a plain-text file. They live only inside the ccxt instance that signs the user's
requests: no log line, exception message or returned document carries them (ccxt's own error texts can
hold signed URLs, so they are reduced to the exchange's one-line `msg` before anyone sees them).

Idempotency is claimed before the exchange is called: the order document and its idempotency key are
written in one transaction first, so a retried or racing request can never reach the exchange twice;
the exchange also gets the trader's `clientOrderId` (Binance rejects a duplicate while it is open).

Positions are the user's holdings with an entry price and P&L rebuilt from their trade history on the
exchange (`trade_history`), marked at the exchange's last price.

Fills happen on the exchange, not here: with `sync_s` set (the API sets it), a background task follows
every user's open orders at that interval and writes what changed, and after a fill the user's positions,
to the store, so they reach the app through the live state like the paper broker's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import ccxt.async_support as ccxt_async
from ccxt.base import errors as ccxt_errors

from backend_stub.accounting import position_doc_id
from backend_stub.brokers import trade_history
from backend_stub.brokers.base import (
    STOP_TYPES,
    BrokerError,
    BrokerUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotCancelable,
    OrderNotFound,
    OrderRequest,
    StatusFilter,
    idempotency_create,
)
from backend_stub.listing import order_page
from backend_stub.money import dec, num, opt_dec
from backend_stub.store.base import (
    ORDERS,
    POSITIONS,
    AlreadyExists,
    Delete,
    Page,
    PageKey,
    Put,
    StateStore,
    Write,
)
from backend_stub.timefmt import iso
from services.secrets.keyring_store import NoSecureStore, exchange_keys_entry, keyring_call

log = logging.getLogger(__name__)

KEYRING_SERVICE = "skeet"

# Per-exchange quirks, kept here so the rest of the backend never sees them.
CLIENT_ORDER_ID_PARAM: dict[str, str] = {"binance": "newClientOrderId"}
CLIENT_ORDER_LOOKUP_PARAM: dict[str, str] = {"binance": "origClientOrderId"}
EXCHANGE_OPTIONS: dict[str, dict[str, Any]] = {
    # We list open orders across symbols on purpose (one call per refresh); ccxt refuses unless told.
    "binance": {"defaultType": "spot", "warnOnFetchOpenOrdersWithoutSymbol": False},
}
# How an exchange pages the user's trade history from the first trade, oldest first (Binance: `fromId`,
# at most 1000 a page). An exchange missing here is asked once, for what it returns by default.
TRADE_HISTORY_FROM_ID: dict[str, str] = {"binance": "fromId"}
TRADE_PAGE = 1000
MAX_TRADE_PAGES = 50  # past this many pages a position says its basis is partial rather than wait longer
OPEN_STATUSES = frozenset({"open"})


# --- errors a trader reads -------------------------------------------------------------------------


class ExchangeKeysMissing(BrokerError):
    """The user stored no API keys for this exchange."""

    status_code = 403


class ExchangeKeysRejected(BrokerError):
    """The exchange refused the user's keys (wrong, revoked, or without trading permission)."""

    status_code = 403


class KeyStoreUnavailable(BrokerError):
    """The secure key store (OS keyring, Secret Manager) cannot be read; no secret is ever read elsewhere."""

    status_code = 503


class RateLimited(BrokerUnavailable):
    """The exchange asked us to slow down (HTTP 429/418, ccxt `DDoSProtection`)."""

    status_code = 429


class ExchangeFailed(BrokerError):
    """The exchange answered with an error that is neither the order's nor the account's fault."""

    status_code = 502


# --- ccxt's own request log, with the secrets taken out ----------------------------------------------


class _WireLogRedactor(logging.Filter):
    """ccxt logs every request at DEBUG with its headers (the API key) and its signed query string.
    Every ccxt instance here logs through one logger carrying this filter, which rewrites each record
    before any handler sees it: known keys become "***", and so do key-like headers and signatures."""

    _HEADER = re.compile(
        r"""(['"][\w-]*(?:key|sign|passphrase|secret|token|authorization)[\w-]*['"]\s*:\s*)(['"])[^'"]*\2""",
        re.I,
    )
    _QUERY = re.compile(r"((?:signature|apikey|api_key|secret|passphrase|token)=)[^&\s,'\"]+", re.I)

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for secret in sorted(self.secrets, key=len, reverse=True):
            message = message.replace(secret, "***")
        message = self._QUERY.sub(r"\1***", self._HEADER.sub(r"\1\2***\2", message))
        record.msg, record.args = message, None
        return True


_WIRE_LOG = logging.getLogger("backend_stub.brokers.ccxt_wire")
_REDACTOR = _WireLogRedactor()
_WIRE_LOG.addFilter(_REDACTOR)


# --- where keys come from --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiCredentials:
    """One user's keys for one exchange. `repr` shows none of them."""

    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    password: str | None = field(default=None, repr=False)  # some exchanges (OKX, KuCoin) want a passphrase

    def to_json(self) -> str:
        doc = {"apiKey": self.api_key, "secret": self.secret}
        if self.password:
            doc["password"] = self.password
        return json.dumps(doc)

    @classmethod
    def from_json(cls, text: str) -> ApiCredentials:
        try:
            doc = json.loads(text)
            return cls(api_key=doc["apiKey"], secret=doc["secret"], password=doc.get("password"))
        except (ValueError, KeyError, TypeError):
            raise KeyStoreUnavailable("The stored exchange keys are unreadable; store them again") from None

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.api_key, self.secret, self.password) if s)


class ExchangeKeys(Protocol):
    """A read-only source of users' exchange keys."""

    async def get(self, uid: str, exchange_id: str) -> ApiCredentials | None:
        """The user's keys for `exchange_id`, or None when none are stored. `KeyStoreUnavailable` when
        the store cannot be read."""
        ...


class KeyringExchangeKeys:
    """The OS keyring (Secret Service, macOS Keychain, Windows Credential Locker), service "skeet".

    A machine without a keyring backend stores nothing and reads nothing: `KeyStoreUnavailable`.
    """

    def __init__(self, *, service: str = KEYRING_SERVICE) -> None:
        self._service = service

    @staticmethod
    def username(uid: str, exchange_id: str) -> str:
        return exchange_keys_entry(uid, exchange_id)

    async def get(self, uid: str, exchange_id: str) -> ApiCredentials | None:
        text = await self._call("get_password", self._service, self.username(uid, exchange_id))
        return None if text is None else ApiCredentials.from_json(text)

    async def put(self, uid: str, exchange_id: str, credentials: ApiCredentials) -> None:
        await self._call(
            "set_password", self._service, self.username(uid, exchange_id), credentials.to_json()
        )

    async def delete(self, uid: str, exchange_id: str) -> None:
        import keyring.errors

        try:
            await self._call("delete_password", self._service, self.username(uid, exchange_id))
        except KeyStoreUnavailable as exc:
            if not isinstance(exc.__cause__, keyring.errors.PasswordDeleteError):
                raise

    @staticmethod
    async def _call(name: str, *args: str) -> Any:
        # The app's keyring access (off the event loop; never a plain-text fallback), in broker errors.
        try:
            return await keyring_call(name, *args)
        except NoSecureStore as exc:
            raise KeyStoreUnavailable(str(exc)) from exc.__cause__


class SecretManagerExchangeKeys:
    """Google Secret Manager (Cloud Run): secret `skeet-exchange-keys-{exchange}-{uid}`, latest version,
    payload the JSON `{"apiKey", "secret", "password"?}`. Read with the service account's credentials
    through google-auth's `AuthorizedSession`; cached for `ttl_s` so orders don't wait on it."""

    def __init__(
        self,
        *,
        project: str,
        credentials: Any = None,
        base_url: str = "https://secretmanager.googleapis.com",
        ttl_s: float = 300.0,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._project = project
        self._credentials = credentials
        self._base_url = base_url.rstrip("/")
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, ApiCredentials | None]] = {}
        self._session: Any = None

    @staticmethod
    def secret_id(uid: str, exchange_id: str) -> str:
        safe_uid = re.sub(r"[^A-Za-z0-9_-]", "_", uid)
        return f"skeet-exchange-keys-{exchange_id}-{safe_uid}"

    async def get(self, uid: str, exchange_id: str) -> ApiCredentials | None:
        key = (uid, exchange_id)
        cached = self._cache.get(key)
        if cached is not None and self._clock() - cached[0] < self._ttl_s:
            return cached[1]
        credentials = await asyncio.to_thread(self._access, self.secret_id(uid, exchange_id))
        self._cache[key] = (self._clock(), credentials)
        return credentials

    def forget(self, uid: str, exchange_id: str) -> None:
        """Drop the cached keys (after the user rotated them)."""
        self._cache.pop((uid, exchange_id), None)

    def _access(self, secret_id: str) -> ApiCredentials | None:
        import google.auth
        import google.auth.transport.requests

        url = f"{self._base_url}/v1/projects/{self._project}/secrets/{secret_id}/versions/latest:access"
        try:
            if self._session is None:
                if self._credentials is None:
                    scope = "https://www.googleapis.com/auth/cloud-platform"
                    self._credentials, _ = google.auth.default(scopes=[scope])
                self._session = google.auth.transport.requests.AuthorizedSession(self._credentials)
            response = self._session.get(url, timeout=self._timeout_s)
        except Exception as exc:  # google-auth and requests errors: the type says enough, never the text
            raise KeyStoreUnavailable(f"Secret Manager cannot be read ({type(exc).__name__})") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise KeyStoreUnavailable(f"Secret Manager answered HTTP {response.status_code}")
        try:
            data = base64.b64decode(response.json()["payload"]["data"]).decode()
        except (ValueError, KeyError, TypeError):
            raise KeyStoreUnavailable("Secret Manager answered an unreadable secret") from None
        return ApiCredentials.from_json(data)


# --- the broker ------------------------------------------------------------------------------------


class CcxtBroker:
    """Orders on `exchange_id` (a ccxt id, e.g. "binance") for every user, each with their own keys.

    `exchange_config` is merged into every ccxt instance's config (URLs, options, `enableRateLimit`), so
    tests and staging point it at another host without touching the code. One ccxt instance per user
    holds that user's keys; public data (markets) comes from a keyless instance. A held coin is a position
    in its market against `quote_currency` (another of its markets when it has none).
    """

    def __init__(
        self,
        *,
        store: StateStore,
        keys: ExchangeKeys,
        exchange_id: str = "binance",
        exchange_config: Mapping[str, Any] | None = None,
        quote_currency: str = "USDT",
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        sync_s: float | None = None,
    ) -> None:
        if not hasattr(ccxt_async, exchange_id):
            raise ValueError(f"ccxt has no exchange {exchange_id!r}")
        self._store = store
        self._keys = keys
        self._exchange_id = exchange_id
        self._quote = quote_currency
        given = dict(exchange_config or {})
        options = {**EXCHANGE_OPTIONS.get(exchange_id, {}), **given.pop("options", {})}
        # ccxt's `verbose` prints requests (keys included) with print(): never on, whatever the config says.
        self._config = {
            "enableRateLimit": True,
            **given,
            "options": options,
            "logger": _WIRE_LOG,
            "verbose": False,
        }
        self._clock_ms = clock_ms
        self._public: Any = None
        self._by_user: dict[str, tuple[str, Any]] = {}  # uid → (keys fingerprint, ccxt instance)
        self._retired: list[Any] = []  # instances replaced after a key change: closed in `aclose`
        self._lock = asyncio.Lock()
        self._sync_s = sync_s
        self._tasks: set[asyncio.Task[None]] = set()  # the order follower and position writes

    @property
    def claims_with_placement(self) -> bool:
        return False  # claimed before the exchange is asked; a rejection is recorded under the key

    @property
    def mode(self) -> str:
        return f"Live · {self._exchange_id}"

    async def start(self) -> None:
        if self._sync_s and not self._tasks:
            self._spawn(self._follow_open_orders(self._sync_s), "live-order-follower")

    async def sync_open_orders(self) -> None:
        """Bring every user's open orders up to date with the exchange (one pass of the follower); a fill
        found also updates the user's positions (`_refresh_open`)."""
        open_by_user: dict[str, list[dict[str, Any]]] = {}
        for uid, doc in await self._store.find(ORDERS, "status", "open"):
            open_by_user.setdefault(uid, []).append(doc)
        for uid, docs in sorted(open_by_user.items()):
            await self._refresh_open(uid, docs)

    async def publish_positions(self, uid: str) -> None:
        """Write the user's positions (as `fetch_positions` reads them) to the store, and remove the ones
        no longer held, so the live state carries them. A failure is logged: the next fill retries."""
        try:
            positions = await self.fetch_positions(uid)
            stored = await self._store.list(uid, POSITIONS)
        except (BrokerError, ccxt_errors.BaseError) as exc:
            log.warning("could not update positions from %s: %s", self._exchange_id, type(exc).__name__)
            return
        held = {position_doc_id(p["symbol"]): p for p in positions}
        writes: list[Write] = [Put(POSITIONS, doc_id, doc) for doc_id, doc in held.items()]
        writes += [Delete(POSITIONS, position_doc_id(d["symbol"])) for d in stored
                   if position_doc_id(d.get("symbol", "")) not in held]
        if writes:
            await self._store.transact(uid, writes)

    async def _follow_open_orders(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.sync_open_orders()
            except Exception:
                log.exception("following open orders on %s failed; trying again", self._exchange_id)

    def _holding_moved(self, uid: str) -> None:
        """A fill changed what the user holds: write their positions in the background (when the broker
        follows the exchange at all: the API's broker does, a bare one in a test does not)."""
        if self._sync_s:
            self._spawn(self.publish_positions(uid), "live-positions")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- public data

    async def markets(self) -> dict[str, dict[str, Any]]:
        exchange = await self._public_exchange()
        return {symbol: _json_market(m) for symbol, m in exchange.markets.items() if m.get("spot", True)}

    # -- orders

    async def create_order(self, uid: str, request: OrderRequest) -> dict[str, Any]:
        return await self._place(uid, request)

    async def _place(self, uid: str, request: OrderRequest, *, parent_id: str | None = None) -> dict[str, Any]:
        credentials = await self._credentials(uid)
        exchange = await self._user_exchange(uid, credentials)  # markets loaded before anything is claimed
        # What the exchange takes natively, what the backend emulates, what is refused: before any claim.
        order_type, native = exchange_options(self._exchange_id, _create_features(exchange), request)
        order_id = uuid.uuid4().hex
        now = self._clock_ms()
        doc = _new_order_doc(order_id, request, now)
        doc["parentId"] = parent_id
        doc["emulated"] = request.has_bracket  # the exit is placed by the backend once the entry fills
        # Claim the idempotency key first: from here on no other request can send this order.
        await self._store.transact(uid, [Put(ORDERS, order_id, doc), idempotency_create(request, order_id)])
        params: dict[str, Any] = {
            CLIENT_ORDER_ID_PARAM.get(self._exchange_id, "clientOrderId"): request.client_order_id,
            **native,
        }
        try:
            placed = await exchange.create_order(
                request.symbol,
                order_type,
                request.side,
                float(request.amount),
                None if request.price is None else float(request.price),
                params,
            )
        except ccxt_errors.BaseError as exc:
            error = _broker_error(exc, credentials, action="place the order")
            if _outcome_unknown(exc):
                # The order may have reached the book: keep it open and unconfirmed, and say so.
                await self._store.transact(
                    uid, [Put(ORDERS, order_id, {**doc, "info": {"confirmed": False}})]
                )
                raise BrokerUnavailable(
                    "The exchange did not confirm the order; it may have been placed: check open orders"
                ) from None
            rejected = {**doc, "status": "rejected", "remaining": 0, "info": {"reason": str(error)}}
            await self._store.transact(uid, [Put(ORDERS, order_id, rejected)])
            raise error from None
        doc = _merge_exchange_order(doc, placed, now)
        await self._store.transact(uid, [Put(ORDERS, order_id, doc)])
        if doc.get("filled"):  # filled at once (a market order): the holding moved
            self._holding_moved(uid)
        return doc

    async def cancel_order(self, uid: str, order_id: str) -> dict[str, Any]:
        doc = await self.fetch_order(uid, order_id)
        if doc.get("status") not in OPEN_STATUSES or not doc.get("exchangeOrderId"):
            raise OrderNotCancelable(
                f"Order {order_id} is {doc.get('status')}; only open orders can be canceled"
            )
        credentials = await self._credentials(uid)
        exchange = await self._user_exchange(uid, credentials)
        try:
            canceled = await exchange.cancel_order(doc["exchangeOrderId"], doc["symbol"])
        except ccxt_errors.OrderNotFound:
            raise OrderNotCancelable(
                f"Order {order_id} is no longer open on {self._exchange_id} (filled or canceled there)"
            ) from None
        except ccxt_errors.BaseError as exc:
            raise _broker_error(exc, credentials, action="cancel the order") from None
        doc = _merge_exchange_order(doc, canceled, self._clock_ms())
        if doc["status"] == "open":  # some exchanges answer a cancel with the order as it was
            doc = {**doc, "status": "canceled"}
        await self._store.transact(uid, [Put(ORDERS, order_id, doc)])
        return doc

    async def fetch_order(self, uid: str, order_id: str) -> dict[str, Any]:
        doc = await self._store.get(uid, ORDERS, order_id)
        if doc is None:
            raise OrderNotFound(f"No order {order_id}")
        return doc

    async def fetch_orders(self, uid: str, status: StatusFilter = "all") -> list[dict[str, Any]]:
        docs = await self._store.list(uid, ORDERS)
        if any(d.get("status") in OPEN_STATUSES for d in docs):
            docs = await self._refresh_open(uid, docs)
        if status == "open":
            docs = [d for d in docs if d.get("status") in OPEN_STATUSES]
        elif status == "closed":
            docs = [d for d in docs if d.get("status") not in OPEN_STATUSES]
        return sorted(docs, key=lambda d: (d.get("timestamp") or 0, d["id"]), reverse=True)

    async def fetch_order_page(
        self, uid: str, status: StatusFilter = "all", *, limit: int, after: PageKey | None = None
    ) -> Page:
        page = await order_page(self._store, uid, status, limit=limit, after=after)
        if not any(d.get("status") in OPEN_STATUSES for d in page.docs):
            return page
        # As `fetch_orders`: the open orders shown are first followed on the exchange.
        refreshed = {d["id"]: d for d in await self._refresh_open(uid, page.docs)}
        docs = [refreshed.get(d["id"], d) for d in page.docs]
        if status == "open":
            docs = [d for d in docs if d.get("status") in OPEN_STATUSES]
        return Page(docs=docs, next=page.next)

    async def fetch_open_orders(self, uid: str, symbol: str | None = None) -> list[dict[str, Any]]:
        """The exchange's own list of the user's open orders (ccxt structures, without `info`)."""
        credentials = await self._credentials(uid)
        exchange = await self._user_exchange(uid, credentials)
        try:
            orders = await exchange.fetch_open_orders(symbol)
        except ccxt_errors.BaseError as exc:
            raise _broker_error(exc, credentials, action="list open orders") from None
        return [{k: v for k, v in o.items() if k != "info"} for o in orders]

    async def fetch_positions(self, uid: str) -> list[dict[str, Any]]:
        """Each held coin as a long position at average cost from the user's trades in its market, marked at
        the exchange's last price; `basis` says whether the trades explain the holding (`trade_history`)."""
        credentials = await self._credentials(uid)
        exchange = await self._user_exchange(uid, credentials)
        balance = await self._balance(exchange, credentials)
        held = self._holdings(balance, await self.markets())
        symbols = sorted(held)
        try:
            histories, marks = await asyncio.gather(
                asyncio.gather(*(self._my_trades(exchange, s) for s in symbols)),
                self._last_prices(exchange, symbols),
            )
            unpriced_fees = {
                (currency, market["quote"])
                for symbol, trades in zip(symbols, histories, strict=True)
                for market in [held[symbol][0]]
                for currency in trade_history.fee_currencies(
                    trades, base=market["base"], quote=market["quote"]
                )
            }
            fee_prices = await self._fee_prices(exchange, unpriced_fees)
        except ccxt_errors.BaseError as exc:
            raise _broker_error(exc, credentials, action="read the trade history") from None
        now = self._clock_ms()
        positions = []
        for symbol, trades in zip(symbols, histories, strict=True):
            market, amount = held[symbol]
            positions.append(
                trade_history.position_from_trades(
                    symbol=symbol,
                    base=market["base"],
                    quote=market["quote"],
                    held=amount,
                    trades=trades,
                    mark=marks[symbol],
                    fee_prices=fee_prices.get(market["quote"], {}),
                    timestamp_ms=now,
                )
            )
        return positions

    async def fetch_balance(self, uid: str) -> dict[str, Any]:
        credentials = await self._credentials(uid)
        exchange = await self._user_exchange(uid, credentials)
        return await self._balance(exchange, credentials)

    def forget(self, uid: str) -> None:
        """Drop the user's ccxt instance on the next call (their keys changed). Closed in `aclose`."""
        entry = self._by_user.pop(uid, None)
        if entry is not None:
            self._retired.append(entry[1])

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        instances = [e for _, e in self._by_user.values()] + self._retired
        if self._public is not None:
            instances.append(self._public)
        self._by_user, self._public, self._retired = {}, None, []
        await asyncio.gather(*(e.close() for e in instances), return_exceptions=True)

    async def __aenter__(self) -> CcxtBroker:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- internals

    async def _balance(self, exchange: Any, credentials: ApiCredentials) -> dict[str, Any]:
        try:
            raw = await exchange.fetch_balance()
        except ccxt_errors.BaseError as exc:
            raise _broker_error(exc, credentials, action="read the balance") from None
        totals = {c: v for c, v in (raw.get("total") or {}).items() if v}
        balance: dict[str, Any] = {"free": {}, "used": {}, "total": {}}
        for currency in sorted(totals):
            entry = {part: (raw.get(part) or {}).get(currency) for part in ("free", "used", "total")}
            balance[currency] = entry
            for part, value in entry.items():
                balance[part][currency] = value
        return balance

    def _holdings(
        self, balance: Mapping[str, Any], markets: Mapping[str, dict[str, Any]]
    ) -> dict[str, tuple[dict[str, Any], Decimal]]:
        """symbol → (market, amount held) for every held coin with a market; the quote currency is cash."""
        by_base: dict[str, list[str]] = {}
        for symbol, market in markets.items():
            by_base.setdefault(market["base"], []).append(symbol)
        held = {}
        for currency, total in balance["total"].items():
            if currency == self._quote or currency not in by_base or not total:
                continue
            preferred = f"{currency}/{self._quote}"
            symbol = preferred if preferred in markets else min(by_base[currency])
            held[symbol] = (markets[symbol], dec(total))
        return held

    async def _my_trades(self, exchange: Any, symbol: str) -> list[dict[str, Any]]:
        """Every trade of the user in `symbol` the exchange returns (Binance wants the symbol)."""
        from_id = TRADE_HISTORY_FROM_ID.get(self._exchange_id)
        if from_id is None:
            return list(await exchange.fetch_my_trades(symbol))
        trades: list[dict[str, Any]] = []
        next_id = 0
        for _ in range(MAX_TRADE_PAGES):
            page = await exchange.fetch_my_trades(symbol, None, TRADE_PAGE, {from_id: next_id})
            trades += page
            if len(page) < TRADE_PAGE:
                break
            next_id = max(int(t["id"]) for t in page) + 1
        return trades

    async def _last_prices(self, exchange: Any, symbols: list[str]) -> dict[str, Decimal | None]:
        tickers = await asyncio.gather(*(exchange.fetch_ticker(s) for s in symbols))
        return {s: opt_dec(t.get("last")) for s, t in zip(symbols, tickers, strict=True)}

    async def _fee_prices(self, exchange: Any, needed: set[tuple[str, str]]) -> dict[str, dict[str, Decimal]]:
        """quote → {currency → last price in quote} for fees paid in a third currency (BNB), valued at
        today's price: the exchange does not say what they were worth then. Unpriced ones are left out."""
        pairs = sorted((c, q) for c, q in needed if f"{c}/{q}" in exchange.markets)
        marks = await self._last_prices(exchange, [f"{c}/{q}" for c, q in pairs])
        prices: dict[str, dict[str, Decimal]] = {}
        for currency, quote in pairs:
            mark = marks[f"{currency}/{quote}"]
            if mark is not None:
                prices.setdefault(quote, {})[currency] = mark
        return prices

    async def _credentials(self, uid: str) -> ApiCredentials:
        credentials = await self._keys.get(uid, self._exchange_id)
        if credentials is None:
            raise ExchangeKeysMissing(
                f"No API keys stored for {self._exchange_id}: add them in Settings to trade live"
            )
        return credentials

    async def _public_exchange(self) -> Any:
        async with self._lock:
            if self._public is None:
                exchange = getattr(ccxt_async, self._exchange_id)(dict(self._config))
                try:
                    await exchange.load_markets()
                except ccxt_errors.BaseError as exc:
                    await exchange.close()
                    raise _broker_error(exc, None, action="load the markets") from None
                self._public = exchange
            return self._public

    async def _user_exchange(self, uid: str, credentials: ApiCredentials) -> Any:
        public = await self._public_exchange()
        fingerprint = _fingerprint(credentials)
        async with self._lock:
            entry = self._by_user.get(uid)
            if entry is not None and entry[0] == fingerprint:
                return entry[1]
            if entry is not None:
                self._retired.append(entry[1])
            _REDACTOR.secrets.update(credentials.secrets())
            config = {**self._config, "apiKey": credentials.api_key, "secret": credentials.secret}
            if credentials.password:
                config["password"] = credentials.password
            exchange = getattr(ccxt_async, self._exchange_id)(config)
            exchange.set_markets_from_exchange(public)
            self._by_user[uid] = (fingerprint, exchange)
            return exchange

    async def _refresh_open(self, uid: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Bring stored open orders up to date with the exchange; on failure, serve what is stored.

        An order whose placement went unconfirmed (no exchange id) is looked up by its clientOrderId:
        found, it becomes the exchange's order; unknown to the exchange, it is marked rejected."""
        try:
            credentials = await self._credentials(uid)
            exchange = await self._user_exchange(uid, credentials)
            open_now = await exchange.fetch_open_orders()
            by_id = {o["id"]: o for o in open_now}
            by_client_id = {o.get("clientOrderId"): o for o in open_now}
            out, writes, filled = [], [], False
            for doc in docs:
                if doc.get("status") not in OPEN_STATUSES:
                    out.append(doc)
                    continue
                updated = await self._current(exchange, doc, by_id, by_client_id)
                if updated != doc:
                    writes.append(Put(ORDERS, doc["id"], updated))
                    filled = filled or updated.get("filled") != doc.get("filled")
                out.append(updated)
            if writes:
                await self._store.transact(uid, writes)
            if filled:  # found by the follower or by a trader listing orders: positions follow either way
                self._holding_moved(uid)
            exits = [o for o in out if _bracket_due(o)]
            if exits:
                await self._place_exits(uid, exits)
            return out
        except (BrokerError, ccxt_errors.BaseError) as exc:
            log.warning("could not refresh open orders from %s: %s", self._exchange_id, type(exc).__name__)
            return docs

    async def _current(
        self,
        exchange: Any,
        doc: dict[str, Any],
        by_id: Mapping[str, Any],
        by_client_id: Mapping[str, Any],
    ) -> dict[str, Any]:
        exchange_id = doc.get("exchangeOrderId")
        if exchange_id:
            current = by_id.get(exchange_id) or await exchange.fetch_order(exchange_id, doc["symbol"])
            return _merge_exchange_order(doc, current, self._clock_ms())
        current = by_client_id.get(doc["clientOrderId"])
        if current is None:
            lookup = {CLIENT_ORDER_LOOKUP_PARAM.get(self._exchange_id, "clientOrderId"): doc["clientOrderId"]}
            try:
                current = await exchange.fetch_order(None, doc["symbol"], lookup)
            except ccxt_errors.OrderNotFound:
                reason = f"{self._exchange_id} never received the order"
                return {**doc, "status": "rejected", "remaining": 0, "info": {"reason": reason}}
        merged = _merge_exchange_order(doc, current, self._clock_ms())
        merged.pop("info", None)
        return merged

    async def _place_exits(self, uid: str, entries: list[dict[str, Any]]) -> None:
        """The emulated half of a bracket: for each entry that left the book having filled, its exit
        (a limit at the take-profit or a stop at the stop-loss) for the filled amount. Idempotent: the exit's
        clientOrderId is derived from the entry, so a second pass finds it claimed and stops."""
        for entry in entries:
            tp, sl = opt_dec(entry.get("takeProfitPrice")), opt_dec(entry.get("stopLossPrice"))
            request = OrderRequest(
                symbol=entry["symbol"],
                side="sell" if entry["side"] == "buy" else "buy",
                type="limit" if tp is not None else "stop_market",
                amount=dec(entry["filled"]),
                client_order_id=f"x{entry['id'][:31]}",
                price=tp,
                stop_price=None if tp is not None else sl,
            )
            try:
                placed = await self._place(uid, request, parent_id=entry["id"])
            except AlreadyExists:
                continue
            except BrokerError as exc:
                log.warning("bracket exit of order %s was not placed: %s", entry["id"], exc)
                placed = None
            if placed is not None:
                await self._store.transact(uid, [Put(ORDERS, entry["id"], {**entry, "exitId": placed["id"]})])


def _fingerprint(credentials: ApiCredentials) -> str:
    import hashlib

    return hashlib.sha256(credentials.to_json().encode()).hexdigest()


def _create_features(exchange: Any) -> Mapping[str, Any]:
    """ccxt's declared createOrder features for spot (an empty mapping when it declares none)."""
    features = getattr(exchange, "features", None) or {}
    spot = features.get("spot") or {}
    return spot.get("createOrder") or {}


def exchange_options(
    exchange_id: str, features: Mapping[str, Any], request: OrderRequest
) -> tuple[str, dict[str, Any]]:
    """The ccxt order type and params for `request` on an exchange with these createOrder `features`;
    `InvalidOrder` (in a trader's words) for what it cannot take and the backend does not emulate.

    Native: time in force and post-only (ccxt's unified `timeInForce` / `postOnly`), stop triggers
    (`triggerPrice`), trailing stops (`trailingPercent`) where declared. Emulated: a bracket with one exit
    (placed by the order follower once the entry fills). Refused: OCO, and a bracket with both exits
    (either would hold the same coins twice on the exchange)."""
    name = exchange_id.capitalize()
    tif = features.get("timeInForce") or {}
    params: dict[str, Any] = {}
    if request.type == "oco":
        raise InvalidOrder(
            f"OCO orders are not sent to {name} from here: its two legs would each hold the whole amount; "
            "place the limit and the stop as two orders, or use paper trading"
        )
    if request.take_profit_price is not None and request.stop_loss_price is not None:
        raise InvalidOrder(
            f"A live bracket takes a take-profit or a stop-loss, not both ({name} would need an OCO exit); "
            "set one of them"
        )
    if request.time_in_force != "GTC" and request.type == "limit":
        if not tif.get(request.time_in_force):
            raise InvalidOrder(f"{name} does not take {request.time_in_force} orders through ccxt; use GTC")
        params["timeInForce"] = request.time_in_force
    if request.post_only:
        if not tif.get("PO"):
            raise InvalidOrder(f"{name} does not take post-only orders through ccxt")
        params["postOnly"] = True
    if request.type == "trailing_stop":
        if not features.get("trailing"):
            raise InvalidOrder(
                f"{name} offers no trailing stop through ccxt, and a live one is not emulated here "
                "(a stop the backend watches could fill late); use a stop-market order"
            )
        assert request.trailing_percent is not None
        params["trailingPercent"] = float(request.trailing_percent)
    if request.type in STOP_TYPES and request.stop_price is not None:
        params["triggerPrice"] = float(request.stop_price)
    order_type = "limit" if request.type in ("limit", "stop_limit") else "market"
    return order_type, params


def _bracket_due(doc: dict[str, Any]) -> bool:
    """An emulated bracket entry that has left the book filled (in part) and has no exit yet."""
    has_exit = doc.get("takeProfitPrice") is not None or doc.get("stopLossPrice") is not None
    done = doc.get("status") in ("closed", "canceled") and bool(doc.get("filled"))
    return has_exit and done and not doc.get("exitId")


def _new_order_doc(order_id: str, request: OrderRequest, now_ms: int) -> dict[str, Any]:
    return {
        "id": order_id,
        "clientOrderId": request.client_order_id,
        "exchangeOrderId": None,
        "symbol": request.symbol,
        "side": request.side,
        "type": request.type,
        "timeInForce": request.time_in_force,
        "postOnly": request.post_only,
        "price": num(request.price),
        "stopPrice": num(request.stop_price),
        "trailingPercent": num(request.trailing_percent),
        "takeProfitPrice": num(request.take_profit_price),
        "stopLossPrice": num(request.stop_loss_price),
        "parentId": None,
        "ocoId": None,
        "exitId": None,
        "emulated": False,
        "triggerPrice": num(request.stop_price),
        "amount": num(request.amount),
        "filled": 0,
        "remaining": num(request.amount),
        "cost": 0,
        "average": None,
        "status": "open",
        "timestamp": now_ms,
        "datetime": iso(now_ms),
        "lastTradeTimestamp": None,
        "fee": None,
        "trades": [],
    }


def _merge_exchange_order(doc: dict[str, Any], order: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """Our document updated with what the exchange says (its numbers, status and fee); ours keep `id`."""
    merged = dict(doc)
    merged["exchangeOrderId"] = order.get("id") or doc.get("exchangeOrderId")
    for key in ("status", "filled", "remaining", "cost", "average", "lastTradeTimestamp"):
        if order.get(key) is not None:
            merged[key] = _json_number(order[key])
    if order.get("price") is not None and doc.get("price") is None and order.get("type") == "limit":
        merged["price"] = _json_number(order["price"])
    fee = order.get("fee")
    if isinstance(fee, Mapping) and fee.get("cost") is not None:
        merged["fee"] = {"cost": _json_number(fee["cost"]), "currency": fee.get("currency")}
    merged.pop("info", None)
    merged.setdefault("timestamp", now_ms)
    return merged


def _json_number(value: Any) -> Any:
    if isinstance(value, float):
        return num(Decimal(str(value)))
    return value


def _json_market(market: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "symbol",
        "base",
        "quote",
        "active",
        "type",
        "spot",
        "precision",
        "limits",
        "taker",
        "maker",
    )
    return {k: market.get(k) for k in keys}


_EXCHANGE_MSG = re.compile(r'"msg"\s*:\s*"([^"]{1,200})"')
_PLAIN_REASON = re.compile(r"^[\w.-]+ (?!.*://)([A-Za-z][^{}?=&\\]{0,199})$")  # prose, no URL


def _exchange_message(exc: BaseException, credentials: ApiCredentials | None) -> str:
    """The exchange's own one-line reason: the `msg` of its JSON body, or ccxt's "<exchange> <reason>"
    when that is plain prose. Anything else (URLs, query strings, bodies) is never shown."""
    text = str(exc)
    match = _EXCHANGE_MSG.search(text) or _PLAIN_REASON.match(text)
    if not match:
        return ""
    reason = match.group(1).strip()
    for secret in credentials.secrets() if credentials else ():
        reason = reason.replace(secret, "***")
    return f": {reason}"


def _outcome_unknown(exc: BaseException) -> bool:
    """Whether the request may have reached the exchange's matching engine despite the error: a timeout,
    a dropped connection, or an answer ccxt could not read (Binance's -1007 "execution status unknown")."""
    if isinstance(
        exc, ccxt_errors.DDoSProtection | ccxt_errors.RateLimitExceeded | ccxt_errors.OnMaintenance
    ):
        return False  # refused at the door
    return isinstance(
        exc, ccxt_errors.RequestTimeout | ccxt_errors.ExchangeNotAvailable | ccxt_errors.BadResponse
    )


def _broker_error(exc: BaseException, credentials: ApiCredentials | None, *, action: str) -> BrokerError:
    """ccxt's exception as the broker error a trader reads. Most specific ccxt classes first."""
    detail = _exchange_message(exc, credentials)
    name = type(exc).__name__
    log.warning("exchange call failed (%s): %s", action, name)
    if isinstance(exc, ccxt_errors.OrderNotFound):
        return OrderNotFound(f"The exchange does not know this order{detail}")
    if isinstance(exc, ccxt_errors.InsufficientFunds):
        return InsufficientFunds(f"Insufficient funds on the exchange to {action}{detail}")
    if isinstance(exc, ccxt_errors.InvalidOrder | ccxt_errors.BadRequest):  # BadSymbol, filter failures
        return InvalidOrder(f"The exchange rejected the order{detail}")
    if isinstance(exc, ccxt_errors.AuthenticationError):
        return ExchangeKeysRejected(
            "The exchange rejected your API keys (wrong, revoked, or without trading permission)"
        )
    if isinstance(exc, ccxt_errors.DDoSProtection | ccxt_errors.RateLimitExceeded):
        return RateLimited("The exchange is rate limiting us; try again in a few seconds")
    if isinstance(
        exc, ccxt_errors.OperationFailed
    ):  # NetworkError: ExchangeNotAvailable, RequestTimeout, ...
        return BrokerUnavailable(f"The exchange cannot be reached right now ({name}); try again shortly")
    return ExchangeFailed(f"The exchange could not {action}{detail}")
