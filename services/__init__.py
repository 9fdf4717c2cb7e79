"""Everything in Skeet that is not UI: market data, signals, live state, API client, auth, secrets."""
