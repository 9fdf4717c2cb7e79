"""One HTTP exchange with a remote model, every way it can go wrong turned into `ProviderFailed`.

The reasons are short, say what happened (timeout, status, body) and never echo request headers or
the response body, so no credential or prompt can leak into the `fallback` field or the logs.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from backend_stub.insights.types import ProviderFailed, ProviderName


async def post_json(
    http: httpx.AsyncClient,
    url: str,
    *,
    provider: ProviderName,
    headers: dict[str, str],
    body: dict[str, Any],
    timeout_s: float,
) -> Any:
    """POST `body` as JSON and return the decoded JSON answer of a 200, within `timeout_s` overall."""
    try:
        # httpx's timeout bounds each read; the outer deadline also bounds a server that trickles bytes.
        async with asyncio.timeout(timeout_s):
            response = await http.post(url, headers=headers, json=body, timeout=timeout_s)
    except (TimeoutError, httpx.TimeoutException):
        raise ProviderFailed(f"{provider} timed out after {timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise ProviderFailed(f"{provider} could not be reached ({type(exc).__name__})") from None
    if response.status_code != 200:
        hint = " (check the credentials)" if response.status_code in (401, 403) else ""
        raise ProviderFailed(f"{provider} answered HTTP {response.status_code}{hint}")
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ProviderFailed(f"{provider} answered a body that is not JSON") from None


def dig(document: Any, *path: str | int) -> Any:
    """`document[path[0]][path[1]]...`, or None as soon as a step does not exist."""
    for step in path:
        try:
            document = document[step]
        except (KeyError, IndexError, TypeError):
            return None
    return document
