"""Harness for the emulator tests: the Cloud Firestore emulator (Java) and firebase-tools' Auth emulator
(Node), each started once per session on free ports and stopped by PID at the end; Firestore is cleared
between tests. `.ci/install-emulators.sh` installs both.

Where Java or the official Firestore jar is missing, Firestore falls back to the npm package
`@firestore-emulator/server` (gRPC only: no security rules, no REST API, not every method); the tests
that need what it lacks skip and say so. The tests skip, with the reason printed, only when Java and the
jar or Node are absent from the machine; anything else that goes wrong (node packages not installed, an
emulator that does not start) fails them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PROJECT = "demo-skeet"  # "demo-" projects never reach real Google services
FIRESTORE_JAR = Path(
    os.environ.get(
        "SKEET_FIRESTORE_EMULATOR_JAR",
        "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar",
    )
)
FIREBASE_CLI = HERE / "node_modules" / ".bin" / "firebase"
FALLBACK_PACKAGE = HERE / "node_modules" / "@firestore-emulator" / "server"
FALLBACK_LAUNCHER = HERE / "firestore-fallback.mjs"
START_TIMEOUT_S = 60.0


def firestore_command(port: int) -> list[str]:
    """The official Firestore emulator (its jar run directly: no firebase-tools start-up) on `port`."""
    return [
        "java", "-Xms64m", "-Xmx1g", "-XX:TieredStopAtLevel=1",
        "-cp", str(FIRESTORE_JAR), "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
        "start", "--host=127.0.0.1", f"--port={port}", "--database-mode=firestore-native",
    ]  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.emulator)



def _missing_firestore() -> str | None:
    if shutil.which("java") is None:
        return (
            "Java is not installed (the Cloud Firestore emulator needs Java 17): run .ci/install-emulators.sh"
        )
    if not FIRESTORE_JAR.is_file():
        return f"the Cloud Firestore emulator jar is missing ({FIRESTORE_JAR}): run .ci/install-emulators.sh"
    return None


def _missing_auth() -> str | None:
    if shutil.which("node") is None:
        return "Node.js is not installed (the Firebase Auth emulator needs it): run .ci/install-emulators.sh"
    return None


class _Emulator:
    """A child process we started, its log file, and how to stop it (the process and its group)."""

    def __init__(self, name: str, args: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_http(self, url: str, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1):
                    return
            except urllib.error.HTTPError:
                return  # it answers: up
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f}s:\n{self.tail()}")

    def tail(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        # The session leader is our child; its group holds whatever it spawned (node workers, java).
        if self.proc.poll() is None:
            with _suppress_lookup():
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with _suppress_lookup():
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        with _suppress_lookup():
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers left in the group
        self._log_file.close()


class _suppress_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return exc_type is not None and issubclass(exc_type, ProcessLookupError | PermissionError)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Emulators:
    project: str
    firestore_host: str | None  # "127.0.0.1:PORT"
    auth_host: str | None
    firestore_skip: str | None
    auth_skip: str | None
    firestore_fallback: bool = False  # the npm emulator, not the official one
    firestore_control: str | None = None  # where DELETE clears every document

    def need_official_firestore(self, what: str) -> None:
        """Skip when Firestore is the npm fallback, which lacks `what`."""
        if self.firestore_fallback:
            pytest.skip(f"needs {what}, which the npm fallback emulator (@firestore-emulator/server) lacks")

    @property
    def firestore_rest(self) -> str:
        return f"http://{self.firestore_host}/v1/projects/{self.project}/databases/(default)/documents"

    def need_firestore(self) -> str:
        if self.firestore_host is None:
            pytest.skip(f"Firestore emulator unavailable: {self.firestore_skip}")
        return self.firestore_host

    def need_auth(self) -> str:
        if self.auth_host is None:
            pytest.skip(f"Auth emulator unavailable: {self.auth_skip}")
        return self.auth_host


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulators]:
    """Both emulators, started together (their start-ups overlap), stopped at the end of the session."""
    work = tmp_path_factory.mktemp("emulators")
    started: list[_Emulator] = []
    firestore_skip, auth_skip = _missing_firestore(), _missing_auth()
    if auth_skip is None and not (FIREBASE_CLI.exists() and FALLBACK_PACKAGE.exists()):
        pytest.fail(f"the emulators' npm packages are not installed in {HERE}: run .ci/install-emulators.sh")
    fallback = firestore_skip is not None and auth_skip is None
    if fallback:
        print(
            f"\n[emulator tests] {firestore_skip}; Firestore falls back to @firestore-emulator/server, "
            "and the tests needing security rules, the REST API or methods it lacks skip",
            file=sys.stderr,
        )
        firestore_skip = None
    for reason in (firestore_skip, auth_skip):
        if reason:
            print(f"\n[emulator tests] skipping what needs it: {reason}", file=sys.stderr)
    firestore_host = auth_host = control = None
    old_env = dict(os.environ)
    try:
        if fallback:
            port, control_port = free_port(), free_port()
            started.append(
                _Emulator(
                    "Firestore fallback emulator",
                    ["node", str(FALLBACK_LAUNCHER), str(port), str(control_port)],
                    cwd=HERE,
                    env=dict(os.environ),
                    log=work / "firestore.log",
                )  # fmt: skip
            )
            firestore_host, control = f"127.0.0.1:{port}", f"http://127.0.0.1:{control_port}/"
        elif firestore_skip is None:
            port = free_port()
            firestore = _Emulator("Cloud Firestore emulator", firestore_command(port),
                                  cwd=work, env=dict(os.environ), log=work / "firestore.log")
            started.append(firestore)
            firestore_host = f"127.0.0.1:{port}"
            control = f"http://{firestore_host}/emulator/v1/projects/{PROJECT}/databases/(default)/documents"
        if auth_skip is None:
            auth_port, hub_port, logging_port = free_port(), free_port(), free_port()
            config = {
                "emulators": {
                    "ui": {"enabled": False},
                    "auth": {"host": "127.0.0.1", "port": auth_port},
                    "hub": {"host": "127.0.0.1", "port": hub_port},
                    "logging": {"host": "127.0.0.1", "port": logging_port},
                    "singleProjectMode": True,
                }
            }
            (work / "firebase.json").write_text(json.dumps(config))
            home = Path(tempfile.mkdtemp(dir=work, prefix="home-"))
            env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "CI": "1"}
            auth = _Emulator(
                "Firebase Auth emulator",
                [str(FIREBASE_CLI), "emulators:start", "--only", "auth", "--project", PROJECT,
                 "--config", str(work / "firebase.json")],
                cwd=work, env=env, log=work / "auth.log",
            )  # fmt: skip
            started.append(auth)
            auth_host = f"127.0.0.1:{auth_port}"
        t0 = time.monotonic()
        if firestore_host:
            if fallback:
                started[0].wait_http(str(control))
            else:
                started[0].wait_http(f"http://{firestore_host}/")
                _load_rules(firestore_host)
            os.environ["FIRESTORE_EMULATOR_HOST"] = firestore_host
        if auth_host:
            started[-1].wait_http(f"http://{auth_host}/")
            os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = auth_host
        os.environ["GOOGLE_CLOUD_PROJECT"] = PROJECT
        print(f"\n[emulator tests] emulators up in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        yield Emulators(PROJECT, firestore_host, auth_host, firestore_skip, auth_skip, fallback, control)
    finally:
        os.environ.clear()
        os.environ.update(old_env)
        for emulator in started:
            emulator.stop()


def _load_rules(host: str) -> None:
    body = {
        "rules": {"files": [{"name": "firestore.rules", "content": (ROOT / "firestore.rules").read_text()}]}
    }
    response = httpx.put(f"http://{host}/emulator/v1/projects/{PROJECT}:securityRules", json=body, timeout=30)
    response.raise_for_status()


@pytest.fixture
def firestore_host(emulators: Emulators) -> Iterator[str]:
    """The Firestore emulator's host, emptied before the test."""
    host = emulators.need_firestore()
    assert emulators.firestore_control is not None
    clear_firestore(emulators.firestore_control)
    yield host


CLEAR_WAIT_S = 120.0  # the emulator lets a dead client's transaction go after ~60 s (measured: 58.7 s)


def clear_firestore(control: str) -> None:
    """Delete every document of the emulator at `control`. The emulator refuses (409, "Transaction lock
    timeout") while a transaction holds locks, and one begun by a process killed mid-transaction (the chaos
    tests kill instances) holds them until it expires: then this waits, up to CLEAR_WAIT_S."""
    deadline = time.monotonic() + CLEAR_WAIT_S
    while True:
        response = httpx.delete(control, timeout=30)
        if response.status_code != 409 or time.monotonic() > deadline:
            response.raise_for_status()
            return
        time.sleep(0.5)


@pytest.fixture
def auth_host(emulators: Emulators) -> str:
    """The Auth emulator's host, with no accounts before the test."""
    host = emulators.need_auth()
    response = httpx.delete(f"http://{host}/emulator/v1/projects/{emulators.project}/accounts", timeout=30)
    response.raise_for_status()
    return host


@dataclass(frozen=True)
class SignedIn:
    uid: str
    id_token: str
    email: str


@pytest.fixture
def sign_up(auth_host: str):  # noqa: ANN201 - a factory
    """`sign_up(email)` creates an account on the Auth emulator and returns its uid and ID token."""

    def create(email: str, password: str = "correct-horse-1") -> SignedIn:
        response = httpx.post(
            f"http://{auth_host}/identitytoolkit.googleapis.com/v1/accounts:signUp?key=fake-api-key",
            json={"email": email, "password": password, "returnSecureToken": True},
            timeout=30,
        )
        response.raise_for_status()
        body = response.json()
        return SignedIn(uid=body["localId"], id_token=body["idToken"], email=email)

    return create
