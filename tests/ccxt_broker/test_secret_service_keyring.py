"""KeyringExchangeKeys (backend) and ExchangeKeyStore (app) on a real Secret Service (gnome-keyring over D-Bus), as on a Linux desktop.

Runs in a child process under its own `dbus-run-session`, with HOME and XDG dirs in a temporary
directory, so the test's keyring lives and dies with it. Skipped where gnome-keyring is not installed
(`apt-get install -y gnome-keyring dbus-x11`); the stand-in keyring covers the rest of the suite.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import asyncio, json, keyring
from backend_stub.brokers.ccxt_broker import ApiCredentials, KeyringExchangeKeys
from services.secrets import ExchangeKeyStore

async def main():
    keys = KeyringExchangeKeys()
    creds = ApiCredentials(api_key="secret-service-key-5e1a", secret="secret-service-secret-c7d2")
    await keys.put("u1", "binance", creds)
    same = await keys.get("u1", "binance") == creds
    raw = keyring.get_password("skeet", "exchange-keys:binance:u1")
    await keys.delete("u1", "binance")
    gone = await keys.get("u1", "binance") is None
    # Keys saved from the app's settings screen are the ones the local backend's live broker reads.
    app = ExchangeKeyStore("u2")
    store_found = await app.available()
    masked = await app.save("binance", "app-saved-key-0123456789", "app-saved-secret-abcdef")
    via_backend = await keys.get("u2", "binance")
    await app.delete("binance")
    print(json.dumps({"backend": type(keyring.get_keyring()).__module__, "same": same, "gone": gone,
                      "stored_as_json": json.loads(raw)["apiKey"] == creds.api_key,
                      "app_store_found": store_found, "app_masked": masked,
                      "app_to_backend": via_backend is not None and via_backend.api_key == "app-saved-key-0123456789",
                      "app_deleted": await app.masked("binance") is None}))

asyncio.run(main())
"""


@pytest.mark.skipif(
    not (shutil.which("dbus-run-session") and shutil.which("gnome-keyring-daemon")),
    reason="needs gnome-keyring and dbus (apt-get install -y gnome-keyring dbus-x11)",
)
def test_keys_round_trip_through_a_real_secret_service(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(PROBE)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_RUNTIME_DIR": str(runtime),
        "PYTHONPATH": str(REPO),
    }
    script = (
        "echo -n test-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null; "
        f"exec {sys.executable} {tmp_path / 'probe.py'}"
    )
    done = subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {
        "backend": "keyring.backends.SecretService",
        "same": True,
        "gone": True,
        "stored_as_json": True,
        "app_store_found": True,
        "app_masked": "app-…6789",
        "app_to_backend": True,
        "app_deleted": True,
    }
