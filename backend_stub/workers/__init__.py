"""Workers: matching and alert watching, owned per symbol through leases in the store, so any number of
stateless API instances and several workers run against one store (`SKEET_ROLE`, see the README)."""

from backend_stub.workers.alerts import AlertWorker
from backend_stub.workers.leases import LeaseKeeper
from backend_stub.workers.matching import MatchingWorker

__all__ = ["AlertWorker", "LeaseKeeper", "MatchingWorker"]
