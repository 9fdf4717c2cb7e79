"""The OpenAPI document checked in at backend_stub/openapi.json is the one the app serves.

Regenerate after changing a route or a model (then review the diff and commit it):
    SKEET_WRITE_OPENAPI=1 .venv/bin/pytest tests/deploy/test_openapi.py
or without pytest:
    .venv/bin/python -c "import json; from backend_stub.app import create_app; from backend_stub.settings import Settings; print(json.dumps(create_app(Settings(dev_key=b'openapi')).openapi(), indent=2, ensure_ascii=False))" > backend_stub/openapi.json
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from backend_stub.app import create_app
from backend_stub.settings import Settings
from services.auth import devtoken

CHECKED_IN = Path(__file__).resolve().parents[2] / "backend_stub" / "openapi.json"
DEV_KEY = b"openapi-test-dev-key"


def render(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


async def test_the_served_document_is_the_checked_in_one(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, dev_key=DEV_KEY))
    token = devtoken.mint("openapi-reader", key=DEV_KEY)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://skeet.test"
    ) as client:
        response = await client.get("/openapi.json", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    served = response.json()
    if os.environ.get("SKEET_WRITE_OPENAPI") == "1":
        CHECKED_IN.write_text(render(served))
    assert served == json.loads(CHECKED_IN.read_text()), (
        "backend_stub/openapi.json is stale: regenerate it (see this test's docstring) and commit the diff"
    )
    assert CHECKED_IN.read_text() == render(served), (
        "regenerate backend_stub/openapi.json to normalise its format"
    )


def test_the_document_describes_every_route_with_its_errors() -> None:
    document = json.loads(CHECKED_IN.read_text())
    paths = document["paths"]
    assert {"/healthz", "/v1/orders", "/v1/orders/{order_id}", "/v1/insights"} <= set(paths)
    ask = paths["/v1/insights"]["post"]
    assert ask["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/InsightIn")
    assert {"201", "401", "404", "422", "429", "503"} <= set(ask["responses"])
    insight = document["components"]["schemas"]["InsightOut"]["properties"]
    assert insight["provider"]["enum"] == ["local", "vertex", "openai"]
    assert {"trend", "volatility", "sentiment", "signals", "reasoning", "fallback"} <= set(insight)
