"""Benchmark: what splitting the backend costs per order — `POST /v1/orders` on the stateless API
(`SKEET_ROLE=api`, a worker beside it, events on the Pub/Sub emulator) against the one-process default
(`SKEET_ROLE=all`) measured in the same run, on the same machine, each on its own SQLite file.

    python bench/scale.py            # ~1-2 minutes on 2 shared cores
    python bench/scale.py --quick    # ~40 s

Orders are resting limit buys far below the market (0.001 BTC at 30,000), so each one is booked, published (api) and taken
into the owning worker's book; from 1,000 users in turn with fresh clientOrderIds. The load generator is
bench/load.py's (open loop: latency from the scheduled send time). Figures per target: server CPU per
POST of the serving process (and the worker's, for api), and the highest rate held with p99 <= 50 ms and
< 1 % errors. The last line is JSON with the ratios api/all (the baseline is `all`, this run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from load import DEV_KEY, SKEET_ENV, Step, Target, run_step  # noqa: E402
from ui_latency import cpu_seconds, percentile  # noqa: E402

from tests.emulators.conftest import _Emulator  # noqa: E402
from tests.scale.conftest import PUBSUB_EMULATOR  # noqa: E402
from tests.support import free_port, stop, wait_http  # noqa: E402


class RestingTarget(Target):
    """Limit buys of 0.001 BTC at 30,000 USDT (the synthetic market trades near 57,000): they rest."""

    def request(self) -> bytes:
        raw = super().request()
        head, _, body = raw.partition(b"\r\n\r\n")
        doc = json.loads(body)
        doc.update(type="limit", price="30000")
        new = json.dumps(doc).encode()
        head = head.replace(f"Content-Length: {len(body)}".encode(), f"Content-Length: {len(new)}".encode())
        return head + b"\r\n\r\n" + new


def start(tmp: Path, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=(tmp / f"{name}.log").open("wb"),
                            stderr=subprocess.STDOUT)  # fmt: skip


async def best_step(target: Target, rate: float, seconds: float, tries: int, opts: dict[str, Any]) -> Step:
    attempts = [await run_step(target, rate, seconds, **opts) for _ in range(tries)]
    return min(attempts, key=lambda s: (not s.held(), s.errors, percentile(sorted(s.latencies_ms), 0.99)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[100, 200, 300, 400, 600])
    parser.add_argument("--step-seconds", type=float, default=3.0)
    parser.add_argument("--tries", type=int, default=2)
    parser.add_argument("--cpu-rate", type=float, default=100.0)
    parser.add_argument("--cpu-seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.quick:
        args.rates, args.step_seconds, args.tries, args.cpu_seconds = [100, 200, 400], 2.0, 1, 3.0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="skeet-scale-") as tmp_name:
        tmp = Path(tmp_name)
        pubsub_port = free_port()
        emulator = _Emulator("Pub/Sub emulator", [str(PUBSUB_EMULATOR), "--host=127.0.0.1", f"--port={pubsub_port}"],
                             cwd=tmp, env=dict(os.environ), log=tmp / "pubsub.log")  # fmt: skip
        procs: list[subprocess.Popen[bytes]] = []
        try:
            emulator.wait_http(f"http://127.0.0.1:{pubsub_port}/")
            base = {**os.environ, **SKEET_ENV, "SKEET_DEV_KEY": DEV_KEY, "PYTHONPATH": str(ROOT),
                    "SKEET_FEED": "synthetic", "SKEET_MAX_OPEN_ORDERS": "100000",
                    "SKEET_RATE_PER_S": "100000", "SKEET_RATE_BURST": "100000"}  # fmt: skip
            split = {**base, "SKEET_BUS": "pubsub", "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{pubsub_port}",
                     "GOOGLE_CLOUD_PROJECT": "demo-skeet", "SKEET_PUBSUB_TOPIC": f"bench-{uuid.uuid4().hex[:6]}",
                     "SKEET_DATA_DIR": str(tmp / "split")}  # fmt: skip
            all_port, api_port, worker_port = free_port(), free_port(), free_port()
            one = start(tmp, "all", ["-m", "backend_stub"],
                        {**base, "SKEET_DATA_DIR": str(tmp / "all"), "PORT": str(all_port)})  # fmt: skip
            worker = start(tmp, "worker", ["-m", "backend_stub.worker"], {**split, "PORT": str(worker_port)})
            api = start(tmp, "api", ["-m", "backend_stub"], {**split, "SKEET_ROLE": "api", "PORT": str(api_port)})
            procs += [one, worker, api]
            for proc, port in ((one, all_port), (worker, worker_port), (api, api_port)):
                wait_http(f"http://127.0.0.1:{port}/healthz", proc)
            targets = [RestingTarget("all", one, all_port, 1000), RestingTarget("api", api, api_port, 1000)]
            figures = asyncio.run(measure(args, targets, worker))
        finally:
            for proc in procs:
                with contextlib.suppress(Exception):
                    stop(proc)
            emulator.stop()
    figures["elapsed_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures))
    return 0


async def measure(args: argparse.Namespace, targets: list[Target], worker: subprocess.Popen[bytes]) -> dict[str, Any]:
    opts = {"connections": 256, "drain_s": 5.0}
    for target in targets:  # warm-up
        await run_step(target, 50, 1.0, **opts)
    cpu: dict[str, float | None] = {}
    worker_cpu_ms = None
    for target in targets:
        w0 = cpu_seconds(worker.pid)
        step = await run_step(target, args.cpu_rate, args.cpu_seconds, **opts)
        cpu[target.name] = step.summary()["server_cpu_ms_per_req"]
        if target.name == "api" and step.latencies_ms:
            worker_cpu_ms = round((cpu_seconds(worker.pid) - w0) / len(step.latencies_ms) * 1000, 3)
    held: dict[str, float] = {t.name: 0.0 for t in targets}
    steps: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
    for rate in args.rates:
        for target in targets:
            step = await best_step(target, rate, args.step_seconds, args.tries, opts)
            s = step.summary()
            steps[target.name].append(s)
            print(f"{target.name:4} {rate:5.0f}/s  p50 {s['p50_ms']:8.2f}  p99 {s['p99_ms']:8.2f}  p99.9 "
                  f"{s['p999_ms']:8.2f} ms  errors {step.errors:4}  {'held' if s['held'] else 'NOT held'}", flush=True)
            if step.held():
                held[target.name] = max(held[target.name], rate)
    print(f"server CPU per POST at {args.cpu_rate:.0f}/s: all {cpu['all']} ms; api {cpu['api']} ms "
          f"(+ worker {worker_cpu_ms} ms); highest rate held: all {held['all']:.0f}/s, api {held['api']:.0f}/s")
    return {
        "bench": "scale", "cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
        "server_cpu_ms_per_post": cpu, "worker_cpu_ms_per_post": worker_cpu_ms,
        "cpu_ratio_api_over_all": round(cpu["api"] / cpu["all"], 3) if cpu["api"] and cpu["all"] else None,
        "held_rate": held,
        "held_ratio_api_over_all": round(held["api"] / held["all"], 3) if held["all"] else None,
        "steps": steps,
    }


if __name__ == "__main__":
    sys.exit(main())
