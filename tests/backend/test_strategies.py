"""Saved strategies over HTTP: per user, validated with the backtester's own parser, trader-worded 422s."""

from __future__ import annotations

from typing import Any

import pytest

from tests.backend.conftest import Running, auth

SMA = {
    "name": "SMA 50/200 1h, TP 5%, SL 2%",
    "timeframe": "1h",
    "buy": {"cross_above": ["sma(50)", "sma(200)"]},
    "sell": {"cross_below": ["sma(50)", "sma(200)"]},
    "exit": {"takeProfitPct": 5, "stopLossPct": 2},
}


async def put(backend: Running, uid: str, strategy_id: str, **body: Any) -> Any:
    body.setdefault("symbol", "BTC/USDT")
    body.setdefault("strategy", SMA)
    return await backend.http.put(f"/v1/strategies/{strategy_id}", json=body, headers=auth(uid))


async def test_save_list_load_replace_and_delete(backend: Running) -> None:
    r = await put(backend, "alice", "sma-cross")
    assert r.status_code == 201, r.text
    saved = r.json()
    assert (saved["name"], saved["symbol"], saved["timeframe"], saved["enabled"]) == (
        "SMA 50/200 1h, TP 5%, SL 2%", "BTC/USDT", "1h", False)
    assert saved["strategy"]["exit"] == {"takeProfitPct": 5, "stopLossPct": 2}
    assert saved["run"]["status"] == "off"

    again = await put(backend, "alice", "sma-cross", symbol="ETH/USDT")
    assert again.status_code == 200
    assert again.json()["timestamp"] == saved["timestamp"] and again.json()["symbol"] == "ETH/USDT"
    await put(backend, "alice", "rsi", strategy={"timeframe": "15m", "buy": {"lt": ["rsi(14)", 30]},
                                                 "sell": {"gt": ["rsi(14)", 70]}})
    listed = (await backend.get("alice", "/v1/strategies")).json()
    assert sorted(d["id"] for d in listed) == ["rsi", "sma-cross"]
    assert (await backend.get("alice", "/v1/strategies/sma-cross")).json()["symbol"] == "ETH/USDT"

    gone = await backend.http.delete("/v1/strategies/sma-cross", headers=auth("alice"))
    assert gone.status_code == 200 and gone.json()["id"] == "sma-cross"
    assert (await backend.get("alice", "/v1/strategies/sma-cross")).status_code == 404
    assert [d["id"] for d in (await backend.get("alice", "/v1/strategies")).json()] == ["rsi"]


async def test_one_user_never_sees_or_touches_another_users_strategies(backend: Running) -> None:
    assert (await put(backend, "alice", "mine")).status_code == 201
    assert (await backend.get("bob", "/v1/strategies")).json() == []
    r = await backend.get("bob", "/v1/strategies/mine")
    assert r.status_code == 404 and r.json() == {"error": "No strategy mine"}
    assert (await backend.http.delete("/v1/strategies/mine", headers=auth("bob"))).status_code == 404
    # Bob saving under the same id makes his own; Alice's is untouched.
    assert (await put(backend, "bob", "mine", symbol="ETH/USDT")).status_code == 201
    assert (await backend.get("alice", "/v1/strategies/mine")).json()["symbol"] == "BTC/USDT"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_every_route_needs_a_valid_token(backend: Running, method: str) -> None:
    path = "/v1/strategies/x" if method != "GET" else "/v1/strategies"
    kwargs: dict[str, Any] = {"json": {"symbol": "BTC/USDT", "strategy": SMA}} if method == "PUT" else {}
    r = await backend.http.request(method, path, **kwargs)
    assert r.status_code == 401
    r = await backend.http.request(method, path, headers={"Authorization": "Bearer forged"}, **kwargs)
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"strategy": {**SMA, "buy": {"cross_above": ["sma(50)", "banana"]}}}, "banana"),
        ({"strategy": {**SMA, "timeframe": "7m"}}, "timeframe '7m' does not exist"),
        ({"strategy": {**SMA, "exit": {"stopLossPct": 150}}}, "'exit.stopLossPct' (percent) must be between"),
        ({"strategy": {**SMA, "colour": "red"}}, "unknown strategy field 'colour'"),
        ({"strategy": {k: v for k, v in SMA.items() if k != "timeframe"}}, "must name its timeframe"),
        ({"strategy": {k: v for k, v in SMA.items() if k != "buy"}}, "needs a 'buy' condition"),
        ({"symbol": "NOPE/USDT"}, "Unknown symbol NOPE/USDT"),
        ({"symbol": "BTCUSDT"}, "Symbol has characters it may not hold"),
        ({"enabled": "yes"}, "must be true or false"),
        ({"extra": 1}, "Unknown field extra"),
        ({"strategy": {**SMA, "positions": "short"}, "enabled": True}, "only a long strategy can be switched on"),
    ],
)
async def test_mistakes_are_refused_in_one_sentence(backend: Running, body: dict[str, Any], message: str) -> None:
    r = await put(backend, "alice", "bad", **body)
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]
    assert (await backend.get("alice", "/v1/strategies")).json() == []


async def test_non_finite_numbers_and_bad_json_are_refused(backend: Running) -> None:
    raw = '{"symbol": "BTC/USDT", "strategy": {"timeframe": "1h", "buy": {"gt": ["close", NaN]}}}'
    r = await backend.http.put("/v1/strategies/nan", content=raw, headers={**auth("alice"),
                                                                          "Content-Type": "application/json"})
    assert r.status_code == 422 and "not finite" in r.json()["error"]
    r = await backend.http.put("/v1/strategies/nan", content="{", headers={**auth("alice"),
                                                                        "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "The request body is not valid JSON"
    r = await put(backend, "alice", "bad id!")
    assert r.status_code == 422


async def test_a_backend_that_runs_no_strategies_saves_them_switched_off_only(tmp_path) -> None:  # noqa: ANN001
    from backend_stub.errors import ApiError
    from backend_stub.store.sqlite import SqliteStore
    from backend_stub.strategies import StrategyBook, StrategyIn
    from tests.backend.listfeed import ListFeed

    async with SqliteStore(tmp_path / "state.db") as store:
        book = StrategyBook(store=store, markets=ListFeed({"BTC/USDT": 1.0}).markets)  # a live broker: no runner
        with pytest.raises(ApiError, match="runs no strategies"):
            await book.put("alice", "x", StrategyIn(symbol="BTC/USDT", strategy=SMA, enabled=True))
        doc, created = await book.put("alice", "x", StrategyIn(symbol="BTC/USDT", strategy=SMA))
        assert created and doc["run"] == {"status": "off"} and not doc["enabled"]
