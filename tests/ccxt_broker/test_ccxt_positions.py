"""Live positions: the user's holdings with entry price and P&L rebuilt from their own trades on the exchange
(ccxt `fetch_my_trades`, replayed through the paper broker's bookkeeping), against the loopback Binance
charging Binance's 0.1 % commission in the asset received; and what is said when trades don't explain it."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from backend_stub.app import create_app
from backend_stub.brokers import ccxt_broker
from backend_stub.brokers.base import OrderRequest
from backend_stub.brokers.ccxt_broker import ApiCredentials, RateLimited
from backend_stub.settings import Settings
from services.auth import devtoken
from services.market.loopback_exchange import LoopbackExchange

D = Decimal
Q8 = D("0.00000001")  # positions answer cost basis, entry price and P&L to 1e-8
DEV_KEY = b"ccxt-positions-tests"
TRADER = "trader-1"  # the user whose keys the `keys` fixture stored (the exchange's first account)
OTHER = "trader-2"
OTHER_KEYS = ApiCredentials(api_key="second-trader-key-5d0e", secret="second-trader-secret-91ab")
POSITION_FIELDS = ("entryPrice", "costBasis", "realizedPnl", "unrealizedPnl", "fees")


@pytest.fixture
async def exchange() -> AsyncIterator[LoopbackExchange]:
    """The conftest's exchange with commission, and a second trader's account under other keys."""
    async with LoopbackExchange(balances={"USDT": 50_000, "BTC": 1}, commission_rate=D("0.001")) as ex:
        ex.add_account(api_key=OTHER_KEYS.api_key, secret=OTHER_KEYS.secret, balances={"USDT": 20_000})
        yield ex


def market(side: str, symbol: str, amount: str, client_order_id: str) -> OrderRequest:
    return OrderRequest(
        symbol=symbol, side=side, type="market", amount=D(amount), client_order_id=client_order_id
    )  # type: ignore[arg-type]


def bearer(uid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {devtoken.mint(uid, key=DEV_KEY)}"}


def money(value: Decimal) -> float:
    """What the API answers for an amount of money: rounded to 1e-8, a JSON number."""
    return float(value.quantize(Q8))


def by_symbol(positions: list[dict]) -> dict[str, dict]:
    return {p["symbol"]: p for p in positions}


async def test_buy_then_partial_sell_shows_entry_basis_pnl_and_fees_as_computed_by_hand(
    tmp_path, store, broker, exchange
) -> None:
    app = create_app(Settings(data_dir=tmp_path, dev_key=DEV_KEY, broker="ccxt"), store=store, broker=broker)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://skeet.test") as api:
            for side, amount, key in (("buy", "2", "sol-buy"), ("sell", "0.5", "sol-sell")):
                order = {"symbol": "SOL/USDT", "side": side, "type": "market", "amount": amount}
                placed = await api.post(
                    "/v1/orders", json=order | {"clientOrderId": key}, headers=bearer(TRADER)
                )
                assert placed.status_code == 201 and placed.json()["status"] == "closed", placed.text
            answer = await api.get("/v1/positions", headers=bearer(TRADER))
    assert answer.status_code == 200
    sol = by_symbol(answer.json())["SOL/USDT"]

    # The exchange's own record of the two fills: price and commission (Binance takes it from what you get).
    buy, sell = exchange.account.fills
    assert (buy["isBuyer"], buy["qty"], buy["commission"], buy["commissionAsset"]) == (
        True,
        "2.00000000",
        "0.00200000",
        "SOL",
    )
    assert (sell["isBuyer"], sell["qty"], sell["commissionAsset"]) == (False, "0.50000000", "USDT")
    p1, p2, c2 = D(buy["price"]), D(sell["price"]), D(sell["commission"])
    assert c2 == (D("0.5") * p2 * D("0.001")).quantize(Q8)

    # By hand. The buy paid 2 × p1 USDT for 1.998 SOL (0.002 went in commission, worth 0.002 × p1).
    bought_basis = 2 * p1
    # Selling 0.5 of 1.998 takes that share of the cost; realised = proceeds − fee − that cost.
    sold_basis = bought_basis * D("0.5") / D("1.998")
    realised = D("0.5") * p2 - c2 - sold_basis
    basis = (bought_basis - sold_basis).quantize(Q8)
    held = D("1.998") - D("0.5")
    mark = D(str(sol["markPrice"]))

    assert sol["basis"] == "trades"
    assert (sol["side"], sol["amount"]) == ("long", float(held))
    assert sol["costBasis"] == money(basis)
    assert sol["entryPrice"] == money(basis / held)
    assert sol["realizedPnl"] == money(realised)
    assert sol["fees"] == {"cost": float(D("0.002") * p1 + c2), "currency": "USDT"}
    assert sol["unrealizedPnl"] == money(held * mark - basis)
    # Marked at the exchange's last price.
    now = exchange.feed.price_at("SOL/USDT", int(time.time() * 1000))
    assert sol["markPrice"] == pytest.approx(now, rel=0.01)
    # The balance agrees with the position: the exchange holds exactly the coins the trades explain.
    assert (await broker.fetch_balance(TRADER))["total"]["SOL"] == pytest.approx(float(held))
    assert ("GET", "/api/v3/myTrades") in exchange.requests


async def test_coins_with_no_trade_history_have_an_unknown_basis(broker) -> None:
    [btc] = await broker.fetch_positions(TRADER)  # 1 BTC deposited, never traded
    assert (btc["symbol"], btc["amount"], btc["basis"]) == ("BTC/USDT", 1, "unknown")
    assert all(btc[field] is None for field in POSITION_FIELDS)
    assert btc["markPrice"] > 0 and btc["notional"] == btc["markPrice"]


async def test_coins_the_trades_explain_only_in_part_have_a_partial_basis(broker) -> None:
    await broker.create_order(TRADER, market("buy", "BTC/USDT", "0.01", "btc-top-up"))
    # 1.00999 BTC held, but the trades bought only 0.00999 of it: no cost is invented for the rest.
    [btc] = await broker.fetch_positions(TRADER)
    assert (btc["amount"], btc["basis"]) == (pytest.approx(1.00999), "partial")
    assert all(btc[field] is None for field in POSITION_FIELDS)


async def test_one_users_positions_never_include_anothers(broker, keys, exchange) -> None:
    await keys.put(OTHER, "binance", OTHER_KEYS)
    await broker.create_order(TRADER, market("buy", "SOL/USDT", "2", "mine"))
    await broker.create_order(OTHER, market("buy", "SOL/USDT", "1", "theirs"))
    await broker.create_order(OTHER, market("buy", "ETH/USDT", "0.5", "theirs-eth"))

    mine, theirs = (
        by_symbol(await broker.fetch_positions(TRADER)),
        by_symbol(await broker.fetch_positions(OTHER)),
    )
    assert sorted(mine) == ["BTC/USDT", "SOL/USDT"]
    assert sorted(theirs) == ["ETH/USDT", "SOL/USDT"]
    [my_fill] = exchange.account.fills
    their_fills = exchange.accounts[OTHER_KEYS.api_key].fills
    assert (mine["SOL/USDT"]["amount"], mine["SOL/USDT"]["basis"]) == (1.998, "trades")
    assert mine["SOL/USDT"]["costBasis"] == money(2 * D(my_fill["price"]))
    assert (theirs["SOL/USDT"]["amount"], theirs["SOL/USDT"]["basis"]) == (0.999, "trades")
    assert theirs["SOL/USDT"]["costBasis"] == money(D(their_fills[0]["price"]))
    assert theirs["ETH/USDT"]["costBasis"] == money(D("0.5") * D(their_fills[1]["price"]))
    # Trade ids count per symbol across the exchange, as on Binance; each key is served its own only.
    assert [f["id"] for f in [my_fill, their_fills[0]]] == [1, 2]


async def test_a_long_history_is_read_page_by_page_from_the_first_trade(
    broker, exchange, monkeypatch
) -> None:
    monkeypatch.setattr(ccxt_broker, "TRADE_PAGE", 2)
    for n, (side, amount) in enumerate((("buy", "1"), ("buy", "1"), ("buy", "0.5"), ("sell", "1.2"))):
        await broker.create_order(TRADER, market(side, "SOL/USDT", amount, f"page-{n}"))
    before = exchange.requests.count(("GET", "/api/v3/myTrades"))
    positions = by_symbol(await broker.fetch_positions(TRADER))
    # SOL in pages of 2, 2, then none; BTC (held, never traded) in one empty page.
    assert exchange.requests.count(("GET", "/api/v3/myTrades")) - before == 3 + 1
    sol = positions["SOL/USDT"]
    assert (sol["amount"], sol["basis"]) == (pytest.approx(2.5 * 0.999 - 1.2), "trades")
    buys = exchange.account.fills[:3]
    cost = sum(D(f["price"]) * D(f["qty"]) for f in buys)
    held_after_buys = D("2.4975")
    assert sol["costBasis"] == money(cost - cost * D("1.2") / held_after_buys)


async def test_a_throttled_trade_history_is_a_rate_limit_and_shows_no_keys(broker, exchange, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    exchange.throttle_next(1, path="/api/v3/myTrades")
    with pytest.raises(RateLimited) as caught:
        await broker.fetch_positions(TRADER)
    assert caught.value.status_code == 429
    for text in (str(caught.value), repr(caught.value), caplog.text):
        assert exchange.api_key not in text and exchange.secret not in text
