"""The live broker behind the real API: orders through HTTP reach the loopback exchange, and no route
ever answers with the user's exchange keys, whatever happens."""

from __future__ import annotations

import logging

import httpx

from backend_stub.app import create_app
from backend_stub.settings import Settings
from services.auth import devtoken

DEV_KEY = b"ccxt-broker-api-tests"
TRADER = "trader-1"  # the user whose keys the `keys` fixture stored


def bearer(uid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {devtoken.mint(uid, key=DEV_KEY)}"}


async def test_orders_over_http_reach_the_exchange_and_keys_never_come_back(
    tmp_path, store, broker, exchange, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    app = create_app(Settings(data_dir=tmp_path, dev_key=DEV_KEY, broker="ccxt"), store=store, broker=broker)
    body = {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "0.01", "price": "90000"}
    responses = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://skeet.test") as api:
            created = await api.post(
                "/v1/orders", json=body | {"clientOrderId": "api-1"}, headers=bearer(TRADER)
            )
            retried = await api.post(
                "/v1/orders", json=body | {"clientOrderId": "api-1"}, headers=bearer(TRADER)
            )
            too_big = await api.post(
                "/v1/orders", json=body | {"amount": "2", "clientOrderId": "api-2"}, headers=bearer(TRADER)
            )
            no_keys = await api.post(
                "/v1/orders", json=body | {"clientOrderId": "api-3"}, headers=bearer("keyless")
            )
            canceled = await api.delete(f"/v1/orders/{created.json()['id']}", headers=bearer(TRADER))
            responses = [
                created,
                retried,
                too_big,
                no_keys,
                canceled,
                await api.get("/v1/orders", headers=bearer(TRADER)),
                await api.get("/v1/balance", headers=bearer(TRADER)),
                await api.get("/v1/positions", headers=bearer(TRADER)),
                await api.get("/v1/markets", headers=bearer(TRADER)),
                await api.get("/healthz"),
            ]
    assert created.status_code == 201, created.text
    assert created.json()["clientOrderId"] == "api-1" and created.json()["status"] == "open"
    assert retried.status_code == 200 and retried.json()["id"] == created.json()["id"]
    assert exchange.requests.count(("POST", "/api/v3/order")) == 2  # api-1 once, api-2 once
    assert too_big.status_code == 400 and "insufficient" in too_big.json()["error"].lower()
    assert no_keys.status_code == 403 and "No API keys stored" in no_keys.json()["error"]
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert responses[-1].json()["broker"] == "Live · binance"
    for response in responses:
        for secret in (exchange.api_key, exchange.secret):
            assert secret not in response.text
            assert secret not in str(response.headers)
    assert exchange.api_key not in caplog.text and exchange.secret not in caplog.text
