"""Saved strategies, per user: `GET/PUT/DELETE /v1/strategies[/{id}]`.

A strategy document lives at `users/{uid}/strategies/{id}` (a public collection: it reaches the app through
the live state, like orders). The trader owns `name`, `symbol`, `strategy` (the JSON format of
`services/backtest/README.md`, checked by the same parser as the backtester's, operands included) and
`enabled`; the backend's strategy runner (`strategies_runner.py`) owns `run` (status, position, last
signal, error), which a PUT keeps. Every route reads and writes only the caller's own subtree.

Where the runner is depends on the role: `all` hosts it in the API process (`attach`); in `api` the book
announces each change on the bus (`kind: strategy`) to the strategy worker (`workers/strategies.py`).
Both the routes and the runner write a strategy only if the trader's version is still the one read, so
writers in different processes never overwrite each other's fields.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from backend_stub.bus.base import OrderEvent
from backend_stub.errors import ApiError
from backend_stub.routes import ERRORS, _rate_limit
from backend_stub.runtime import Backend, current_backend, current_uid
from backend_stub.store.base import STRATEGIES, Delete, Lease, Put, StateStore, VersionConflict
from services.backtest import StrategyError, check_operand, parse_strategy

log = logging.getLogger(__name__)

MAX_STRATEGIES_PER_USER = 50
_WRITE_ATTEMPTS = 50  # version conflicts in a row before giving up (each is another writer's commit)
_KEY = r"^[A-Za-z0-9._:\-]+$"
_SYMBOL = r"^[A-Za-z0-9._\-]{1,24}/[A-Za-z0-9._\-]{1,24}(?::[A-Za-z0-9._\-]{1,24})?$"


class StrategyIn(BaseModel):
    """Body of `PUT /v1/strategies/{id}`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    symbol: str = Field(min_length=1, max_length=74, pattern=_SYMBOL, description='ccxt symbol, e.g. "BTC/USDT"')
    strategy: dict[str, Any] = Field(description="the strategy document (services/backtest/README.md); it must "
                                                 "name its timeframe")
    enabled: StrictBool = Field(default=False, description="true: the backend trades it on paper now")


class RunnerControl(Protocol):
    """What the routes tell the strategy runner (`strategies_runner.StrategyRunner`)."""

    async def apply(self, uid: str, doc: dict[str, Any] | None, strategy_id: str) -> None:
        """The strategy was saved (`doc`) or deleted (None): start, restart or stop running it."""
        ...


def plain_json(value: Any) -> Any:
    """The body as plain JSON numbers (the API reads numbers as Decimal); a number that is not finite is
    refused, since it can be neither tested nor stored."""
    if isinstance(value, Decimal | float):
        if not math.isfinite(value):
            raise ApiError(422, "The strategy holds a number that is not finite (NaN or Infinity)")
        return int(value) if isinstance(value, Decimal) and value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_json(v) for v in value]
    return value


class StrategyBook:
    """The saved strategies of every user, in the store; `runner` hears of every change (or, with
    `publish`, a strategy worker in another process, through the bus)."""

    def __init__(self, *, store: StateStore, markets: Callable[[], Any], runner: RunnerControl | None = None,
                 publish: Callable[[OrderEvent], Awaitable[None]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._store, self._markets, self._runner, self._clock = store, markets, runner, clock
        self._publish = publish
        # Per user: a PUT and the runner's state write are read-modify-writes of the same document.
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # The strategy worker's lease: its runner's writes are refused once another worker holds it.
        self.fence: Lease | None = None

    def attach(self, runner: RunnerControl) -> None:
        self._runner = runner

    async def write_run(self, uid: str, strategy_id: str, run: dict[str, Any], *, if_enabled: bool = False) -> bool:
        """The runner's state into the document (False: the strategy was deleted meanwhile, or with
        `if_enabled` switched off: nothing written)."""
        async with self._locks[uid]:
            for _ in range(_WRITE_ATTEMPTS):
                version = await self._store.latest_version(uid)
                doc = await self._store.get(uid, STRATEGIES, strategy_id)
                if doc is None or (if_enabled and not doc.get("enabled")):
                    return False
                try:
                    await self._store.transact(uid, [Put(STRATEGIES, strategy_id, {**doc, "run": run})],
                                               if_version=version, fence=self.fence)
                    return True
                except VersionConflict:  # the trader's PUT or an order committed in between: read again
                    continue
            raise VersionConflict(f"the state of strategy {strategy_id} kept changing while being written")

    async def list(self, uid: str) -> list[dict[str, Any]]:
        docs = await self._store.list(uid, STRATEGIES)
        return sorted(docs, key=lambda d: d.get("timestamp") or 0, reverse=True)

    async def get(self, uid: str, strategy_id: str) -> dict[str, Any]:
        doc = await self._store.get(uid, STRATEGIES, strategy_id)
        if doc is None:
            raise ApiError(404, f"No strategy {strategy_id}")
        return doc

    async def put(self, uid: str, strategy_id: str, body: StrategyIn) -> tuple[dict[str, Any], bool]:
        """The saved document and whether it is new."""
        raw = plain_json(body.strategy)
        try:
            strategy = parse_strategy(raw, check_operand=check_operand)
        except (StrategyError, ValueError, TypeError) as exc:  # any shape a body can take is the trader's mistake
            raise ApiError(422, f"The strategy is not usable: {exc}") from None
        if strategy.timeframe is None:
            raise ApiError(422, "The strategy must name its timeframe (1m, 5m, 15m, 1h, 4h or 1d) to run on a market")
        markets = await self._markets()
        if body.symbol not in markets:
            raise ApiError(422, f"Unknown symbol {body.symbol}; see GET /v1/markets for what can be traded")
        if body.enabled and self._runner is None and self._publish is None:
            raise ApiError(422, "This backend runs no strategies (they run on paper only); save it switched off")
        if body.enabled and strategy.positions != "long":
            raise ApiError(422, "Paper trading is spot trading: only a long strategy can be switched on")
        async with self._locks[uid]:
            for _ in range(_WRITE_ATTEMPTS):
                version = await self._store.latest_version(uid)
                existing = await self._store.get(uid, STRATEGIES, strategy_id)
                if existing is None and len(await self._store.list(uid, STRATEGIES)) >= MAX_STRATEGIES_PER_USER:
                    raise ApiError(409, f"You have {MAX_STRATEGIES_PER_USER} strategies; delete one to save another")
                doc = self._document(strategy_id, body, raw, strategy.name, strategy.timeframe, existing)
                try:  # conditional: the runner (maybe in a worker) writes its state into the same document
                    await self._store.transact(uid, [Put(STRATEGIES, strategy_id, doc)], if_version=version)
                    break
                except VersionConflict:
                    continue
            else:
                raise ApiError(503, "Your account is busy; try saving the strategy again")
        if self._runner is not None:
            await self._runner.apply(uid, doc, strategy_id)
            doc = await self._store.get(uid, STRATEGIES, strategy_id) or doc  # with the runner's state
        else:
            await self._announce(uid, doc)
        return doc, existing is None

    async def _announce(self, uid: str, doc: dict[str, Any]) -> None:
        """Tell the strategy worker (role api). Committed already: a lost event costs its reconcile period."""
        if self._publish is None:
            return
        try:
            await self._publish(OrderEvent("strategy", uid, doc["id"], doc["symbol"]))
        except Exception as exc:
            log.warning("strategies: could not announce %s (%s); the worker finds it when it re-reads", doc["id"], exc)

    def _document(self, strategy_id: str, body: StrategyIn, raw: dict[str, Any], name: str, timeframe: str,
                  existing: dict[str, Any] | None) -> dict[str, Any]:
        now = int(self._clock() * 1000)
        return {
            "id": strategy_id,
            "name": name,
            "symbol": body.symbol,
            "timeframe": timeframe,
            "strategy": raw,
            "enabled": body.enabled,
            "timestamp": existing["timestamp"] if existing else now,
            "updatedAt": now,
            "run": (existing or {}).get("run") or {"status": "off"},
        }

    async def delete(self, uid: str, strategy_id: str) -> dict[str, Any]:
        doc = await self.get(uid, strategy_id)
        if self._runner is not None:
            await self._runner.apply(uid, None, strategy_id)  # stopped first: it writes no state after this
        async with self._locks[uid]:
            await self._store.transact(uid, [Delete(STRATEGIES, strategy_id)])
        await self._announce(uid, doc)  # role api: the worker stops it (its state writes find no document)
        return doc


router = APIRouter(tags=["strategies"])
Uid = Annotated[str, Depends(current_uid)]
StrategyId = Annotated[str, Path(min_length=1, max_length=64, pattern=_KEY)]


async def _book(backend: Annotated[Backend, Depends(current_backend)]) -> StrategyBook:
    if backend.strategies is None:
        raise ApiError(503, "Saved strategies are not available on this backend")
    return backend.strategies


async def _writer(uid: Uid, backend: Annotated[Backend, Depends(current_backend)]) -> StrategyBook:
    """The book, for a write: rate-limited per user like orders and alerts."""
    _rate_limit(backend, uid, "strategy")
    return await _book(backend)


Book = Annotated[StrategyBook, Depends(_book)]
Writer = Annotated[StrategyBook, Depends(_writer)]


@router.get("/v1/strategies", responses=ERRORS)
async def list_strategies(uid: Uid, book: Book) -> list[dict[str, Any]]:
    """The caller's saved strategies, newest first, each with its runner's state."""
    return await book.list(uid)


@router.get("/v1/strategies/{strategy_id}", responses=ERRORS)
async def get_strategy(strategy_id: StrategyId, uid: Uid, book: Book) -> dict[str, Any]:
    """One of the caller's strategies; 404 for anyone else's."""
    return await book.get(uid, strategy_id)


@router.put("/v1/strategies/{strategy_id}", status_code=201, responses={200: {"description": "replaced"}, **ERRORS})
async def put_strategy(strategy_id: StrategyId, body: StrategyIn, uid: Uid, book: Writer,
                       response: Response) -> dict[str, Any]:
    """Save (201) or replace (200) a strategy; `enabled: true` switches it on for paper trading."""
    doc, created = await book.put(uid, strategy_id, body)
    if not created:
        response.status_code = 200
    return doc


@router.delete("/v1/strategies/{strategy_id}", responses=ERRORS)
async def delete_strategy(strategy_id: StrategyId, uid: Uid, book: Writer) -> dict[str, Any]:
    """Stop and remove one of the caller's strategies (an open position stays in the account)."""
    return await book.delete(uid, strategy_id)
