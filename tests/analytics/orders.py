"""Order documents as the paper broker writes them (ccxt unified orders with their `trades`)."""

from __future__ import annotations

from typing import Any


def trade(price: float, amount: float, fee: float, ts: int, *, currency: str = "USDT") -> dict[str, Any]:
    return {"price": price, "amount": amount, "cost": price * amount, "timestamp": ts,
            "fee": {"cost": fee, "currency": currency}}


def order(order_id: str, symbol: str, side: str, amount: float, trades: list[dict[str, Any]],
          **extra: Any) -> dict[str, Any]:
    filled = sum(t["amount"] for t in trades)
    quote = symbol.split("/")[1]
    return {"id": order_id, "clientOrderId": f"c-{order_id}", "symbol": symbol, "side": side,
            "type": "market", "amount": amount, "filled": filled, "remaining": amount - filled,
            "status": "closed" if filled >= amount else "open",
            "timestamp": trades[0]["timestamp"] if trades else 1_000,
            "fee": {"cost": sum(t["fee"]["cost"] for t in trades), "currency": quote},
            "trades": [{**t, "id": f"{order_id}-{i + 1}", "order": order_id, "symbol": symbol, "side": side}
                       for i, t in enumerate(trades)],
            **extra}


def btc_round_trip() -> dict[str, dict[str, Any]]:
    """Buy 2 BTC in two partial fills (100, then 110), sell 1.5 at 120; fees 0.1 % in USDT.

    By hand: basis 100.1 + 110.11 = 210.21 for 2 BTC; selling 1.5 closes 75 % of it (157.6575) for
    180 - 0.18, realising 22.1625; 0.5 BTC stays with basis 52.5525. Fees 0.39.
    """
    return {
        "o1": order("o1", "BTC/USDT", "buy", 2.0, [trade(100, 1.0, 0.1, 1_000), trade(110, 1.0, 0.11, 2_000)]),
        "o2": order("o2", "BTC/USDT", "sell", 1.5, [trade(120, 1.5, 0.18, 3_000)]),
    }
