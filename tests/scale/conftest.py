"""Emulators for the many-instances tests: the official Pub/Sub emulator and the official Firestore
emulator (both Debian packages of Google's Cloud SDK, Java 17), each started once per session on a free
port and stopped by PID; `.ci/install-system.sh` installs them. Tests that need one are marked `emulator`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulators.conftest import FIRESTORE_JAR, PROJECT, _Emulator, clear_firestore, firestore_command
from tests.support import free_port

PUBSUB_EMULATOR = Path(
    os.environ.get(
        "SKEET_PUBSUB_EMULATOR", "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"
    )
)


def _require(what: str, path: Path) -> None:
    # Not a skip: CI installs both (.ci/install-system.sh), so a missing one is a broken machine.
    if shutil.which("java") is None:
        pytest.fail(f"{what} needs Java 17: run .ci/install-system.sh")
    if not path.exists():
        pytest.fail(f"{what} is not installed ({path}): run .ci/install-system.sh")


@pytest.fixture(scope="session")
def pubsub_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`127.0.0.1:PORT` of a Pub/Sub emulator started for this session."""
    _require("the Pub/Sub emulator", PUBSUB_EMULATOR)
    work = tmp_path_factory.mktemp("pubsub")
    port = free_port()
    emulator = _Emulator(
        "Pub/Sub emulator",
        [str(PUBSUB_EMULATOR), "--host=127.0.0.1", f"--port={port}"],
        cwd=work, env=dict(os.environ), log=work / "pubsub.log",
    )  # fmt: skip
    try:
        emulator.wait_http(f"http://127.0.0.1:{port}/")
        yield f"127.0.0.1:{port}"
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`127.0.0.1:PORT` of the official Firestore emulator started for this session."""
    _require("the Firestore emulator", FIRESTORE_JAR)
    work = tmp_path_factory.mktemp("firestore")
    port = free_port()
    emulator = _Emulator("Cloud Firestore emulator", firestore_command(port),
                         cwd=work, env=dict(os.environ), log=work / "firestore.log")
    try:
        emulator.wait_http(f"http://127.0.0.1:{port}/")
        yield f"127.0.0.1:{port}"
    finally:
        emulator.stop()


@pytest.fixture
def pubsub(pubsub_host: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The emulator's host, in `PUBSUB_EMULATOR_HOST` (and a demo project) for this test."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    return pubsub_host


@pytest.fixture
def firestore(firestore_emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The Firestore emulator's host, emptied, in `FIRESTORE_EMULATOR_HOST` for this test."""
    control = f"http://{firestore_emulator}/emulator/v1/projects/{PROJECT}/databases/(default)/documents"
    clear_firestore(control)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    return firestore_emulator
