"""`trade_history`: a holding's position from ccxt trades, computed by hand: fees in quote, in the coin and
in a third currency, trades given out of order, and the cases the trades cannot explain."""

from __future__ import annotations

from decimal import Decimal

from backend_stub.brokers.trade_history import fee_currencies, position_from_trades

D = Decimal


def trade(trade_id: int, side: str, amount: str, price: str, fee: str, currency: str, at: int) -> dict:
    """A ccxt unified trade, as `fetch_my_trades` gives it (numbers as floats)."""
    return {
        "id": str(trade_id),
        "timestamp": at,
        "symbol": "ETH/USDT",
        "side": side,
        "amount": float(amount),
        "price": float(price),
        "cost": float(D(amount) * D(price)),
        "fee": {"cost": float(fee), "currency": currency},
        "fees": [{"cost": float(fee), "currency": currency}],
    }


def eth(held: str, trades: list[dict], *, mark: str | None = "2100", fee_prices: dict | None = None) -> dict:
    return position_from_trades(
        symbol="ETH/USDT",
        base="ETH",
        quote="USDT",
        held=D(held),
        trades=trades,
        mark=None if mark is None else D(mark),
        fee_prices=fee_prices or {},
        timestamp_ms=1_700_000_000_000,
    )


# Buy 1 ETH at 2000 (fee 0.001 ETH), buy 1 at 2200 (fee 0.5 BNB), sell 0.5 at 2300 (fee 1.15 USDT).
HISTORY = [
    trade(7, "sell", "0.5", "2300", "1.15", "USDT", 3_000),  # out of order: replayed by time
    trade(5, "buy", "1", "2000", "0.001", "ETH", 1_000),
    trade(6, "buy", "1", "2200", "0.005", "BNB", 2_000),
]


def test_fees_in_the_coin_in_quote_and_in_bnb_by_hand() -> None:
    position = eth("1.499", HISTORY, fee_prices={"BNB": D("600")})
    # Holding 0.999 + 1 = 1.999 ETH for 2000 + 2200 + 0.005 × 600 (the BNB fee) = 4203 USDT.
    basis_before_sale = D(4203)
    sold = basis_before_sale * D("0.5") / D("1.999")
    basis = basis_before_sale - sold
    assert position["basis"] == "trades"
    assert position["amount"] == 1.499
    assert position["costBasis"] == float(basis.quantize(D("1e-8")))
    assert position["entryPrice"] == float((basis.quantize(D("1e-8")) / D("1.499")).quantize(D("1e-8")))
    assert position["realizedPnl"] == float((D(1150) - D("1.15") - sold).quantize(D("1e-8")))
    # 0.001 ETH at 2000 + 0.005 BNB at 600 + 1.15 USDT
    assert position["fees"] == {"cost": 6.15, "currency": "USDT"}
    unrealised = D("1.499") * 2100 - basis.quantize(D("1e-8"))
    assert position["unrealizedPnl"] == float(unrealised.quantize(D("1e-8")))
    assert fee_currencies(HISTORY, base="ETH", quote="USDT") == {"BNB"}


def test_a_fee_in_a_currency_without_a_price_makes_the_basis_partial() -> None:
    position = eth("1.499", HISTORY, fee_prices={})
    assert position["basis"] == "partial"
    assert (position["amount"], position["markPrice"], position["notional"]) == (1.499, 2100, 1.499 * 2100)
    for field in ("entryPrice", "costBasis", "realizedPnl", "unrealizedPnl", "fees"):
        assert position[field] is None


def test_selling_coins_the_history_never_bought_makes_the_basis_partial() -> None:
    # The trades sell 0.5 before any buy (coins deposited earlier): that sale's cost is unknown.
    early_sale = trade(1, "sell", "0.5", "1900", "0.95", "USDT", 500)
    position = eth("1.499", [*HISTORY, early_sale], fee_prices={"BNB": D("600")})
    assert position["basis"] == "partial" and position["realizedPnl"] is None


def test_no_trades_is_an_unknown_basis_and_no_price_is_no_unrealised_pnl() -> None:
    assert eth("3", [])["basis"] == "unknown"
    unmarked = eth("0.999", [HISTORY[1]], mark=None)
    assert unmarked["basis"] == "trades" and unmarked["costBasis"] == 2000
    assert unmarked["markPrice"] is None and unmarked["unrealizedPnl"] is None
