"""One controller per feature of a session: each owns its feature's intents and I/O, reads and writes the
session's `AppState`, and starts its background work through the session's `TaskOwner`.

| controller | owns |
| --- | --- |
| `MarketController` | the feed, history, warm-up, the tick stream, freshness, watchlist, timeframe, source |
| `TradingController` | the order ticket (live orders confirm), cancels, price alerts (`RetrySafeSubmit`) |
| `RulesController` | the trader's signal rules: rule book ↔ engine |
| `AccountController` | live state (orders, positions, alerts, insights), the backend's broker, keys, theme |
| `InsightsController` | questions to the insight provider |
| `ReportsController` | the analytics report file and its download |
"""

from client.controllers.account import AccountController
from client.controllers.insights import InsightsController
from client.controllers.market import MarketController
from client.controllers.reports import ReportsController
from client.controllers.rules import RulesController
from client.controllers.submit import RetrySafeSubmit
from client.controllers.trading import TradingController

__all__ = [
    "AccountController",
    "InsightsController",
    "MarketController",
    "ReportsController",
    "RetrySafeSubmit",
    "RulesController",
    "TradingController",
]
