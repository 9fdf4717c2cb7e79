"""Live user state (orders, fills, positions, alerts, insights) as a stream of `Change` events."""

from services.live.types import Change, ChangeKind, ConnectionStatus, LiveState

__all__ = ["Change", "ChangeKind", "ConnectionStatus", "LiveState"]
