"""Fuzz the running API against its own OpenAPI document with schemathesis: no input, however odd,
may make it answer 5xx. Bounded: a few examples per operation, one server for the whole module.

The server is the real one (`python -m backend_stub serve`, dev-token auth on loopback, SQLite state,
replay feed, paper broker, local insights); every request carries a valid bearer token so the fuzzing
reaches the handlers instead of stopping at the auth gate.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from services.auth import devtoken

EXAMPLES_PER_OPERATION = 20
DEV_KEY = secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def live_api(deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("fuzz")
    port = deployment.free_port()
    env = deployment.base_env(
        HOST="127.0.0.1",
        PORT=str(port),
        SKEET_AUTH="local",
        SKEET_DEV_KEY=DEV_KEY,
        SKEET_DATA_DIR=str(tmp / "data"),
        SKEET_RATE_PER_S="1000",  # fuzzing is not abuse: let the requests reach the handlers
        SKEET_RATE_BURST="1000",
        SKEET_READ_RATE_PER_S="1000",
        SKEET_READ_BURST="1000",
    )
    argv = [sys.executable, "-m", "backend_stub", "serve"]
    with deployment.process(argv, env, port=port, log_path=tmp / "server.log") as server:
        yield server.url


@pytest.fixture(scope="module")
def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {devtoken.mint('fuzzer', key=DEV_KEY.encode())}"}


@pytest.fixture(scope="module")
def api_schema(live_api: str, auth_headers: dict[str, str]) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live_api}/openapi.json", headers=auth_headers, timeout=10)


def documented_operations() -> list[tuple[str, str]]:
    """(method, path) of every operation in the checked-in document (test_openapi keeps it the served one)."""
    document = json.loads((Path(__file__).resolve().parents[2] / "backend_stub" / "openapi.json").read_text())
    methods = ("get", "post", "put", "patch", "delete")
    return [(m.upper(), path) for path, item in document["paths"].items() for m in item if m in methods]


# schemathesis' own pytest loader (`schemathesis.pytest.from_fixture`) breaks on pytest 9 (it writes
# `node._nodeid`), so each operation's case strategy is driven with hypothesis directly.
@pytest.mark.parametrize(("method", "path"), documented_operations(), ids=lambda v: str(v))
def test_no_input_makes_the_api_fail(
    api_schema: schemathesis.BaseSchema, auth_headers: dict[str, str], method: str, path: str
) -> None:
    operation = api_schema[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),  # valid requests, edge values included
        operation.as_strategy(GenerationMode.NEGATIVE),  # wrong types, missing fields, malformed bodies
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,  # the same inputs every run: a failure here is reproducible, not flaky
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call_and_validate(headers=auth_headers, timeout=10, checks=[not_a_server_error])
        statuses.append(response.status_code)

    statuses: list[int] = []
    fuzz()
    # Every request got past the auth gate, so the fuzzing exercised the handlers themselves.
    assert statuses and 401 not in statuses, statuses
