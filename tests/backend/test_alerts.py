"""Price alerts: set over HTTP, fired by the backend's market feed, delivered through the change feed;
idempotent, validated, per user, and kept across a restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from backend_stub import alerts as alerts_module
from tests.backend.conftest import Running, auth, make_settings, serve
from tests.backend.listfeed import ListFeed
from tests.backend.test_stream import until_synced


async def next_change(ws) -> dict:  # type: ignore[no-untyped-def]
    message = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert message["type"] == "change", message
    return message


async def test_an_alert_fires_once_when_a_trade_reaches_its_price(backend: Running, feed: ListFeed) -> None:
    async with connect(backend.ws_url, additional_headers=auth("alice")) as ws:
        await until_synced(ws)
        r = await backend.alert("alice", symbol="BTC/USDT", price="51000", note="take profit?")
        assert r.status_code == 201, r.text
        alert = r.json()
        assert (alert["condition"], alert["status"], alert["price"]) == ("above", "active", 51000)
        added = await next_change(ws)
        assert (added["collection"], added["kind"], added["doc"]["id"]) == ("alerts", "added", alert["id"])
        await feed.until_followed("BTC/USDT")  # the watcher follows the symbol now it has an alert

        await feed.trade("BTC/USDT", 50_999.99)  # close is not there
        await feed.trade("ETH/USDT", 60_000)  # another symbol
        assert (await backend.get("alice", "/v1/alerts")).json()[0]["status"] == "active"

        await feed.trade("BTC/USDT", 51_000.5)
        fired = await next_change(ws)
        assert fired["kind"] == "modified"
        assert fired["doc"]["status"] == "triggered"
        assert fired["doc"]["triggerPrice"] == 51_000.5
        assert fired["doc"]["note"] == "take profit?"
        await feed.until_followed("BTC/USDT", 1)  # its only alert fired: the watcher lets the symbol go

        await feed.trade("BTC/USDT", 52_000)  # it fired already: nothing more
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)


async def test_a_level_below_the_price_fires_on_a_fall(backend: Running, feed: ListFeed) -> None:
    alert = (await backend.alert("alice", symbol="ETH/USDT", price="2900")).json()
    assert alert["condition"] == "below"
    await feed.until_followed("ETH/USDT")
    await feed.trade("ETH/USDT", 2950)
    await feed.trade("ETH/USDT", 2900)
    [stored] = (await backend.get("alice", "/v1/alerts")).json()
    assert (stored["status"], stored["triggerPrice"]) == ("triggered", 2900)


async def test_a_retry_returns_the_first_alert_and_never_makes_a_second(backend: Running) -> None:
    body = {"symbol": "BTC/USDT", "price": "55000", "clientAlertId": "retry-me"}
    responses = await asyncio.gather(*(backend.alert("alice", **body) for _ in range(5)))
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 201]
    assert {r.json()["id"] for r in responses} == {"retry-me"}
    assert len((await backend.get("alice", "/v1/alerts")).json()) == 1
    r = await backend.alert("alice", **{**body, "price": "56000"})
    assert r.status_code == 409
    assert "already used for a different alert" in r.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"symbol": "NOPE/USDT", "price": "1"}, "Unknown symbol NOPE/USDT"),
        ({"symbol": "BTC/USDT", "price": "0"}, "must be above zero"),
        ({"symbol": "BTC/USDT", "price": "-5"}, "must be above zero"),
        ({"symbol": "BTC/USDT", "price": "51000.001"}, "not a multiple of the tick 0.01 USDT"),
        ({"symbol": "BTC/USDT", "price": "50000"}, "BTC/USDT is at 50,000 USDT now"),
        ({"symbol": "BTC/USDT", "price": "lots"}, "Price must be a number"),
        ({"symbol": "BTC/USDT", "price": "51000", "note": "x" * 141}, "Note must be at most 140 characters"),
        ({"symbol": "BTC/USDT", "price": "51000", "clientAlertId": "no spaces"}, "clientAlertId has characters it may not hold"),
    ],
)
async def test_a_bad_alert_gets_a_readable_4xx(backend: Running, body: dict, message: str) -> None:
    r = await backend.alert("alice", **body)
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]
    assert (await backend.get("alice", "/v1/alerts")).json() == []


async def test_bob_never_sees_touches_or_hears_of_alices_alerts(backend: Running, feed: ListFeed) -> None:
    async with connect(backend.ws_url, additional_headers=auth("bob")) as bob_ws:
        await until_synced(bob_ws)
        alert = (await backend.alert("alice", symbol="BTC/USDT", price="50500")).json()
        assert (await backend.get("bob", "/v1/alerts")).json() == []
        r = await backend.http.delete(f"/v1/alerts/{alert['id']}", headers=auth("bob"))
        assert r.status_code == 404
        # The same key is Bob's own: it makes his alert, it does not replay Alice's.
        mine = await backend.alert("bob", symbol="ETH/USDT", price="3100", clientAlertId=alert["id"])
        assert (mine.status_code, mine.json()["symbol"]) == (201, "ETH/USDT")
        assert (await next_change(bob_ws))["doc"]["symbol"] == "ETH/USDT"
        await feed.until_followed("ETH/USDT")  # followed again, with Alice's BTC/USDT
        await feed.until_followed("BTC/USDT")
        await feed.trade("BTC/USDT", 50_600)  # fires Alice's alert
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bob_ws.recv(), 0.3)
    [still] = (await backend.get("alice", "/v1/alerts")).json()
    assert still["status"] == "triggered"


async def test_a_deleted_alert_is_removed_everywhere_and_never_fires(backend: Running, feed: ListFeed) -> None:
    async with connect(backend.ws_url, additional_headers=auth("alice")) as ws:
        await until_synced(ws)
        alert = (await backend.alert("alice", symbol="BTC/USDT", price="50100")).json()
        await next_change(ws)
        r = await backend.http.delete(f"/v1/alerts/{alert['id']}", headers=auth("alice"))
        assert r.status_code == 200
        removed = await next_change(ws)
        assert (removed["kind"], removed["id"]) == ("removed", alert["id"])
        await feed.until_followed("BTC/USDT", 1)  # no alert left on it: only the paper broker follows it
        await feed.trade("BTC/USDT", 60_000)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
    assert (await backend.get("alice", "/v1/alerts")).json() == []
    assert (await backend.http.delete(f"/v1/alerts/{alert['id']}", headers=auth("alice"))).status_code == 404


async def test_active_alerts_survive_a_restart_and_still_fire(tmp_path: Path) -> None:
    first = ListFeed({"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0})
    async with serve(make_settings(tmp_path), first) as running:
        await first.until_consumers(1)
        await running.alert("alice", symbol="BTC/USDT", price="49000", clientAlertId="dip")
    second = ListFeed({"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0})
    async with serve(make_settings(tmp_path), second) as running:
        await second.until_followed("BTC/USDT")  # the alert from the store is followed again
        await second.trade("BTC/USDT", 48_999)
        [alert] = (await running.get("alice", "/v1/alerts")).json()
        assert (alert["id"], alert["status"]) == ("dip", "triggered")


async def test_the_number_of_active_alerts_is_capped(
    backend: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alerts_module, "MAX_ALERTS_PER_USER", 2)
    for price in ("51000", "52000"):
        assert (await backend.alert("alice", symbol="BTC/USDT", price=price)).status_code == 201
    r = await backend.alert("alice", symbol="BTC/USDT", price="53000")
    assert r.status_code == 409
    assert "You have 2 active alerts" in r.json()["error"]
    assert (await backend.alert("bob", symbol="BTC/USDT", price="53000")).status_code == 201
