"""`SkeetApi`: the app's only door to the backend. Every order carries an idempotency key
(ccxt's `clientOrderId`), so retrying after a dropped connection can never place it twice."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

TokenProvider = Callable[[], Awaitable[str]]
PAGE_LIMIT = 500  # the backend's largest page (backend_stub/listing.py MAX_LIMIT)
NEXT_CURSOR = "Next-Cursor"  # the response header naming the next page; absent on the last


class ApiError(Exception):
    """The backend answered with an error; `message` is readable by a trader."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Unauthorized(ApiError):
    """The token was refused (expired, revoked or for another backend)."""


class OrderRejected(ApiError):
    """The order broke a market rule or the account's limits (a 4xx on an order)."""


class BackendUnreachable(ApiError):
    """No answer from the backend after the retries (network down, server stopped)."""


def new_client_order_id() -> str:
    """A fresh idempotency key; Binance accepts up to 36 chars of [A-Za-z0-9_-]."""
    return "skeet-" + secrets.token_hex(12)


def new_client_alert_id() -> str:
    """A fresh idempotency key for a price alert (it is also the alert's id)."""
    return "alert-" + secrets.token_hex(12)


class SkeetApi:
    """Async client of the Skeet API (`backend_stub`, Cloud Run in production).

    An async context manager: it owns an `httpx.AsyncClient` and closes it.
    """

    def __init__(
        self,
        *,
        base_url: str,
        token: TokenProvider,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._retries = retries
        self._backoff_s = backoff_s
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s, transport=transport)

    async def __aenter__(self) -> SkeetApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def health(self) -> dict[str, Any] | None:
        """`/healthz` (no token needed): `{"status": "ok", "broker": "Paper" | "Live · binance"}`,
        or None when the backend does not answer."""
        try:
            response = await self._http.get("/healthz")
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    async def markets(self) -> dict[str, dict[str, Any]]:
        return await self._request("GET", "/v1/markets")

    async def orders(self, status: str = "all") -> list[dict[str, Any]]:
        """Every order of the user (all pages), newest first."""
        return await self._list_all("/v1/orders", {"status": status})

    async def positions(self) -> list[dict[str, Any]]:
        return await self._request("GET", "/v1/positions")

    async def balance(self) -> dict[str, Any]:
        return await self._request("GET", "/v1/balance")

    async def place_order(
        self,
        *,
        symbol: str,
        side: str,
        type: str,
        amount: float | str,
        price: float | str | None = None,
        stop_price: float | str | None = None,
        client_order_id: str | None = None,
        fields: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Place an order; safe to call again with the same `client_order_id` after any failure. `fields`
        carries the Order API's other fields by their wire names (timeInForce, postOnly, trailingPercent,
        takeProfitPrice, stopLossPrice)."""
        body: dict[str, Any] = {
            "symbol": symbol,
            "side": side,
            "type": type,
            "amount": amount,
            "clientOrderId": client_order_id or new_client_order_id(),
        }
        if price is not None:
            body["price"] = price
        if stop_price is not None:
            body["stopPrice"] = stop_price
        body.update(fields or {})
        # Retrying is safe only because the key is fixed before the first attempt.
        return await self._request("POST", "/v1/orders", json=body, rejected=OrderRejected)

    async def cancel_order(self, order_id: str) -> dict[str, Any]:
        return await self._request("DELETE", f"/v1/orders/{order_id}", rejected=OrderRejected)

    async def create_alert(
        self, *, symbol: str, price: float | str, client_alert_id: str, note: str = ""
    ) -> dict[str, Any]:
        """Set a price alert; safe to call again with the same `client_alert_id` after any failure."""
        body = {"symbol": symbol, "price": price, "note": note, "clientAlertId": client_alert_id}
        return await self._request("POST", "/v1/alerts", json=body)

    async def alerts(self) -> list[dict[str, Any]]:
        """Every alert of the user (all pages), newest first."""
        return await self._list_all("/v1/alerts", {})

    async def delete_alert(self, alert_id: str) -> dict[str, Any]:
        return await self._request("DELETE", f"/v1/alerts/{alert_id}")

    async def strategies(self) -> list[dict[str, Any]]:
        """The user's saved strategies, newest first, each with the backend runner's state (`run`)."""
        return await self._request("GET", "/v1/strategies")

    async def save_strategy(self, strategy_id: str, *, symbol: str, strategy: dict[str, Any],
                            enabled: bool = False) -> dict[str, Any]:
        """Save or replace a strategy (idempotent: the id is the key); `enabled` switches it on for paper."""
        body = {"symbol": symbol, "strategy": strategy, "enabled": enabled}
        return await self._request("PUT", f"/v1/strategies/{strategy_id}", json=body)

    async def delete_strategy(self, strategy_id: str) -> dict[str, Any]:
        return await self._request("DELETE", f"/v1/strategies/{strategy_id}")

    async def insight(
        self,
        symbol: str,
        question: str | None = None,
        *,
        timeframe: str = "1m",
        signals: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Ask for a market insight; `signals` are the recent ones the app's engine saw fire."""
        body: dict[str, Any] = {"symbol": symbol, "timeframe": timeframe, "signals": list(signals or [])[-20:]}
        if question:
            body["question"] = question
        return await self._request("POST", "/v1/insights", json=body)

    async def insights(self) -> list[dict[str, Any]]:
        return await self._request("GET", "/v1/insights")

    async def _list_all(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """A paginated listing read to its end: the backend hands the next page's cursor in a header."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page_params = {**params, "limit": str(PAGE_LIMIT), **({"cursor": cursor} if cursor else {})}
            response = await self._send("GET", path, params=page_params)
            items.extend(response.json())
            cursor = response.headers.get(NEXT_CURSOR)
            if not cursor:
                return items

    async def _request(
        self,
        method: str,
        path: str,
        *,
        rejected: type[ApiError] = ApiError,
        **kwargs: Any,
    ) -> Any:
        return (await self._send(method, path, rejected=rejected, **kwargs)).json()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        rejected: type[ApiError] = ApiError,
        **kwargs: Any,
    ) -> httpx.Response:
        last_error: Exception | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
            try:
                headers = {"Authorization": f"Bearer {await self._token()}"}
                response = await self._http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as exc:  # connect/read/write failures and timeouts
                last_error = exc
                continue
            if response.status_code >= 500 or response.status_code == 429:
                last_error = ApiError(_message(response), status=response.status_code)
                if response.status_code == 429:
                    await asyncio.sleep(min(float(response.headers.get("Retry-After", "1")), 5.0))
                continue
            if response.status_code == 401:
                raise Unauthorized(_message(response), status=401)
            if response.status_code >= 400:
                raise rejected(_message(response), status=response.status_code)
            return response
        if isinstance(last_error, ApiError):
            raise last_error
        raise BackendUnreachable(f"The Skeet backend at {self.base_url} is unreachable ({last_error})")


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if isinstance(body.get(key), str):
                return body[key]
    return f"HTTP {response.status_code}"
