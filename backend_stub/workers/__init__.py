"""Workers: matching, alert watching and the paper strategy runner, owned per symbol through leases in the store, so any number of
stateless API instances and several workers run against one store (`SKEET_ROLE`, see the README)."""

from backend_stub.workers.alerts import AlertWorker
from backend_stub.workers.leases import LeaseKeeper
from backend_stub.workers.matching import MatchingWorker
from backend_stub.workers.strategies import StrategyWorker

__all__ = ["AlertWorker", "LeaseKeeper", "MatchingWorker", "StrategyWorker"]
