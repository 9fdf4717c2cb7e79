"""HTTP routes: markets, orders, positions, balance, price alerts. Thin: parse, call the desk or the broker, answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from backend_stub.errors import ApiError
from backend_stub.listing import DEFAULT_LIMIT, MAX_LIMIT, NEXT_CURSOR, decode_cursor, encode_cursor
from backend_stub.models import AlertIn, DecimalJSONRoute, ErrorOut, LeanJSONRoute, OrderIn
from backend_stub.runtime import Backend, current_backend, current_uid
from backend_stub.store.base import Page

router = APIRouter(route_class=DecimalJSONRoute)  # JSON numbers read as exact decimals

Uid = Annotated[str, Depends(current_uid)]
Runtime = Annotated[Backend, Depends(current_backend)]
OrderId = Annotated[str, Path(min_length=1, max_length=64)]
AlertId = Annotated[str, Path(min_length=1, max_length=64)]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 404, 409, 413, 422, 429, 503)
}
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"page size, at most {MAX_LIMIT}")]
Cursor = Annotated[
    str | None, Query(max_length=400, description=f"the previous page's `{NEXT_CURSOR}` header")
]
PAGED = {"headers": {NEXT_CURSOR: {"description": "cursor of the next page; absent on the last"}}}


def _paged(page: Page, response: Response) -> list[dict[str, Any]]:
    if page.next is not None:
        response.headers[NEXT_CURSOR] = encode_cursor(page.next)
    return page.docs


def _rate_limit(backend: Backend, uid: str, what: str = "order") -> None:
    wait_s = backend.limiter.take(uid)
    if wait_s > 0:
        retry_after = max(1, int(wait_s + 0.999))
        raise ApiError(
            429,
            f"Too many {what} requests; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


@router.get("/healthz", tags=["meta"])
async def healthz(request: Request) -> dict[str, Any]:
    """Liveness: no auth, no I/O."""
    backend: Backend | None = getattr(request.app.state, "backend", None)
    return {"status": "ok", "broker": backend.broker.mode if backend else None}


@router.get("/v1/markets", tags=["markets"], responses=ERRORS)
async def markets(uid: Uid, backend: Runtime) -> dict[str, dict[str, Any]]:
    """Tradable symbols → ccxt market structure (precision as step sizes, limits)."""
    return await backend.broker.markets()


async def create_order(body: OrderIn, request: Request, response: Response) -> dict[str, Any]:
    """Place an order. 201 with the new order; 200 with the same order for a retry of a clientOrderId."""
    # The hottest route reads the caller and the backend itself: FastAPI solves each `Depends` as a nested
    # dependency tree (headers, query and cookies parsed again for each), ~10% of a POST's CPU for two
    # attribute reads. The same functions, the same 401 when the gate did not run.
    uid, backend = await current_uid(request), await current_backend(request)
    _rate_limit(backend, uid)
    order, created = await backend.desk.place(uid, body.to_request())
    if not created:
        response.status_code = 200
    return order


# The hottest route is served by LeanJSONRoute (models.py): a well-formed order skips FastAPI's
# per-request machinery; the route, its OpenAPI entry and every error answer are as declared here.
router.add_api_route(
    "/v1/orders", create_order, methods=["POST"], tags=["orders"], status_code=201,
    responses={200: {"description": "a retry"}, **ERRORS}, route_class_override=LeanJSONRoute,
)


@router.get("/v1/orders", tags=["orders"], responses={200: PAGED, **ERRORS})
async def list_orders(
    uid: Uid,
    backend: Runtime,
    response: Response,
    status: Annotated[Literal["open", "closed", "all"], Query()] = "all",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> list[dict[str, Any]]:
    """The caller's orders, newest first, a page at a time. "closed" is every order no longer open
    (filled, canceled, rejected, expired). More pages: the `Next-Cursor` header, passed back as `cursor`."""
    page = await backend.broker.fetch_order_page(uid, status, limit=limit, after=decode_cursor(cursor))
    return _paged(page, response)


@router.get("/v1/orders/{order_id}", tags=["orders"], responses=ERRORS)
async def get_order(order_id: OrderId, uid: Uid, backend: Runtime) -> dict[str, Any]:
    """One of the caller's orders; 404 for anyone else's."""
    return await backend.broker.fetch_order(uid, order_id)


@router.delete("/v1/orders/{order_id}", tags=["orders"], responses=ERRORS)
async def cancel_order(order_id: OrderId, uid: Uid, backend: Runtime) -> dict[str, Any]:
    """Cancel an open order; 409 when it is no longer open, 404 when it is not the caller's."""
    _rate_limit(backend, uid)
    return await backend.broker.cancel_order(uid, order_id)


@router.get("/v1/positions", tags=["account"], responses=ERRORS)
async def positions(uid: Uid, backend: Runtime) -> list[dict[str, Any]]:
    """Positions with entry and mark price, realised and unrealised P&L (fees included)."""
    return await backend.broker.fetch_positions(uid)


@router.get("/v1/balance", tags=["account"], responses=ERRORS)
async def balance(uid: Uid, backend: Runtime) -> dict[str, Any]:
    """ccxt balance structure: free, used (held by open orders) and total per currency."""
    return await backend.broker.fetch_balance(uid)


@router.post(
    "/v1/alerts", tags=["alerts"], status_code=201, responses={200: {"description": "a retry"}, **ERRORS}
)
async def create_alert(body: AlertIn, uid: Uid, backend: Runtime, response: Response) -> dict[str, Any]:
    """Set a price alert. 201 with the new alert; 200 with the same alert for a retry of a clientAlertId.
    When a trade reaches the price, the alert turns "triggered" in the live state."""
    _rate_limit(backend, uid, "alert")
    alert, created = await backend.alerts.create(
        uid, symbol=body.symbol, price=body.price, client_alert_id=body.clientAlertId, note=body.note
    )
    if not created:
        response.status_code = 200
    return alert


@router.get("/v1/alerts", tags=["alerts"], responses={200: PAGED, **ERRORS})
async def list_alerts(
    uid: Uid,
    backend: Runtime,
    response: Response,
    status: Annotated[Literal["active", "triggered", "all"], Query()] = "all",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> list[dict[str, Any]]:
    """The caller's alerts, active and triggered, newest first, a page at a time (as orders)."""
    page = await backend.alerts.page(
        uid, limit=limit, after=decode_cursor(cursor), status=None if status == "all" else status
    )
    return _paged(page, response)


@router.delete("/v1/alerts/{alert_id}", tags=["alerts"], responses=ERRORS)
async def delete_alert(alert_id: AlertId, uid: Uid, backend: Runtime) -> dict[str, Any]:
    """Remove one of the caller's alerts; 404 when it is not the caller's."""
    _rate_limit(backend, uid, "alert")
    return await backend.alerts.delete(uid, alert_id)
