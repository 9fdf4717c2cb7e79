"""The Cloud Run image, checked without a Docker engine: the Dockerfile's invariants, what
`.dockerignore` lets into the build context, the dependencies it installs, and its CMD serving."""

from __future__ import annotations

import ast
import json
import re
import shlex
import sys
from importlib import metadata
from pathlib import Path

import httpx
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "backend_stub" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

SECRET_NAME = re.compile(r"(?i)(secret|passw|token|api_?key|private|credential|_key\b|^key\b)")
SECRET_VALUE = re.compile(
    r"(sk-[A-Za-z0-9]{16,}|AIza[0-9A-Za-z_-]{20,}|-----BEGIN|ya29\.|[A-Za-z0-9+/=_-]{40,})"
)
# Imported only where the image never goes: the OS keyring is the laptop's key store.
OPTIONAL_IMPORTS = {"keyring"}


def instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    out = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def env_pairs() -> dict[str, str]:
    pairs: dict[str, str] = {}
    for keyword, rest in instructions():
        if keyword == "ENV":
            for token in shlex.split(rest):
                name, sep, value = token.partition("=")
                assert sep, f"use ENV NAME=value, not the legacy form: {rest!r}"
                pairs[name] = value
    return pairs


def cmd() -> list[str]:
    [rest] = [rest for keyword, rest in instructions() if keyword == "CMD"]
    argv = json.loads(rest)  # exec form: signals reach the server (Cloud Run sends SIGTERM)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    return argv


def test_the_base_image_is_python_311_slim() -> None:
    froms = [rest for keyword, rest in instructions() if keyword == "FROM"]
    assert froms and froms[-1].split("@")[0] == "python:3.11-slim"


def test_the_server_runs_as_a_non_root_user() -> None:
    users = [rest for keyword, rest in instructions() if keyword == "USER"]
    assert users, "no USER: the server would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    created = [rest for keyword, rest in instructions() if keyword == "RUN" and "useradd" in rest]
    assert created and re.search(rf"\b{re.escape(user)}\s*$", created[-1])
    uid = re.search(r"--uid\s+(\d+)", created[-1])
    assert uid is None or int(uid.group(1)) != 0
    # Nothing after USER may switch back.
    keywords = [keyword for keyword, _ in instructions()]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k in ("RUN", "COPY", "ADD"))


def test_no_secret_is_baked_into_the_image() -> None:
    for keyword, rest in instructions():
        if keyword == "ARG":
            assert not SECRET_NAME.search(rest.split("=")[0]), f"ARG looks like a secret: {rest}"
        if keyword in ("COPY", "ADD"):
            assert not re.search(r"(?i)(\.env\b|credential|secret|\.pem\b|\.key\b|dev-key|\.db\b)", rest)
            assert not rest.startswith("--from"), "no multi-stage copy of build secrets expected"
    for name, value in env_pairs().items():
        assert not SECRET_NAME.search(name), f"ENV {name} looks like a secret"
        assert not SECRET_VALUE.search(value), f"ENV {name} holds a secret-looking value"
    assert not SECRET_VALUE.search(DOCKERFILE.read_text().replace("PYTHONDONTWRITEBYTECODE", ""))


def test_the_cmd_listens_on_cloud_runs_port_on_every_interface() -> None:
    command = " ".join(cmd())
    assert "${PORT" in command or "$PORT" in command
    assert "HOST=0.0.0.0" in command or env_pairs().get("HOST") == "0.0.0.0"
    assert "python -m backend_stub serve" in command
    assert "exec python" in command  # the shell gives way: python gets Cloud Run's SIGTERM itself


def copied_sources() -> list[str]:
    sources = []
    for keyword, rest in instructions():
        if keyword == "COPY":
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            sources.extend(parts[:-1])
    return sources


def test_copied_paths_exist() -> None:
    sources = copied_sources()
    assert {"backend_stub/", "services/", "assets/replay/"} <= set(sources)
    for source in sources:
        path = REPO / source
        assert path.exists(), f"COPY {source}: no such path in the repository"
    assert any((REPO / "assets" / "replay").iterdir()), "the replay recordings the feed reads are missing"


def dockerignore_admits(relative: str) -> bool:
    """Docker's rule: the last pattern matching the path (or one of its parent directories) decides."""
    included = True
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = (
            re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        )
        regex = regex.replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, c) for c in candidates):
            included = negate
    return included


def test_the_build_context_holds_the_copied_trees_and_nothing_secret() -> None:
    for source in copied_sources():
        tree = REPO / source
        files = [tree] if tree.is_file() else [
            p for p in tree.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        assert files, f"{source} is copied but holds nothing"
        for path in files:
            assert dockerignore_admits(path.relative_to(REPO).as_posix()), (
                f"{path} is left out of the context"
            )
    for kept_out in (
        ".env",
        "backend_stub/.env",
        ".venv/bin/python",
        "tests/deploy/test_dockerfile.py",
        "client/__init__.py",
        "state.db",
        "backend_stub/state.db",
        "services/secrets/dev-key",
        "backend_stub/service-account.json",
        "backend_stub/__pycache__/app.cpython-311.pyc",
        ".git/config",
    ):
        assert not dockerignore_admits(kept_out), f"{kept_out} would enter the build context"


def pinned_requirements() -> list[Requirement]:
    """What the image's one `pip install -r FILE` installs: FILE as the Dockerfile copies it from the repo."""
    [run] = [rest for keyword, rest in instructions() if keyword == "RUN" and rest.startswith("pip install")]
    args = shlex.split(run)[2:]
    assert args[:1] == ["-r"] and len(args) == 2, f"the image installs one pinned file, not {args}"
    copies = {parts[-1]: parts[0] for keyword, rest in instructions() if keyword == "COPY"
              for parts in [[p for p in shlex.split(rest) if not p.startswith("--")]]}
    source = REPO / copies[args[1]]
    lines = [line.split("#")[0].strip() for line in source.read_text().splitlines()]
    return [Requirement(line) for line in lines if line]


def test_the_suite_installs_the_images_pins() -> None:
    """The Makefile constrains the app's and the suite's install by the image's pin file, so a release
    upstream never makes the suite test other versions than the image ships."""
    makefile = (REPO / "Makefile").read_text()
    pins = re.search(r"^PINS := (\S+)$", makefile, re.M)
    assert pins and (REPO / pins.group(1)).is_file()
    installs = re.findall(r"^\t\$\(PIP\) install (.*)$", makefile, re.M)
    assert installs and all("-c $(PINS)" in line for line in installs), installs
    assert pins.group(1) in copied_sources()  # the same file the image installs from


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code (lazy imports count: the backend may call them)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # a submodule, maybe
    return found


def _local_file(module: str) -> Path | None:
    parts = module.split(".")
    for candidate in (REPO.joinpath(*parts).with_suffix(".py"), REPO.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def backend_modules() -> set[Path]:
    """The repository's files the backend can load: backend_stub/ whole, then the `services` modules it
    imports, followed transitively (a package's `__init__` included), not the whole of services/."""
    todo = list((REPO / "backend_stub").rglob("*.py"))
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imports(path):
            if module.split(".")[0] != "services":
                continue
            parts = module.split(".")
            for depth in range(2, len(parts) + 1):  # services/x/__init__.py, then services/x/y.py, ...
                found = _local_file(".".join(parts[:depth]))
                if found is not None and found not in seen:
                    todo.append(found)
    return seen


def third_party_imports(paths: set[Path]) -> set[str]:
    local = {"backend_stub", "services"}
    found = {module.split(".")[0] for path in paths for module in _imports(path)}
    return {m for m in found if m not in sys.stdlib_module_names and m not in local and m != "__future__"}


def requirement_closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution pip would install for `requirements`, read from installed metadata."""
    seen: set[str] = set()
    todo = [(r.name, r.extras) for r in requirements]
    while todo:
        name, extras = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                todo.append((req.name, req.extras))
    return seen


def test_the_image_installs_what_the_backend_imports_at_the_tested_versions() -> None:
    requirements = pinned_requirements()
    for req in requirements:
        [pin] = list(req.specifier)
        assert pin.operator == "==", f"{req} is not pinned"
        assert metadata.version(req.name) == pin.version, (
            f"the suite runs {req.name} {metadata.version(req.name)}"
        )
    installed = requirement_closure(requirements)
    providers = metadata.packages_distributions()
    missing = {}
    for module in sorted(third_party_imports(backend_modules()) - OPTIONAL_IMPORTS):
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        if not dists & installed:
            missing[module] = sorted(dists) or ["<not installed here either>"]
    assert not missing, f"imported by the backend but not installed in the image: {missing}"
    assert "flet" not in installed and "pytest" not in installed  # the client and the tests stay out


def test_the_cmd_serves_the_api_on_port(deployment, tmp_path: Path) -> None:
    port = deployment.free_port()
    env = deployment.base_env(**env_pairs(), PORT=str(port))
    # Cloud Run's state is Firestore through the service account; here the embedded store stands in for
    # the database only, everything else is the image's configuration.
    env.update(SKEET_STATE="sqlite", SKEET_DATA_DIR=str(tmp_path / "data"))
    # Cloud Run hands the service account's credentials over its metadata server, which does not exist here
    # (GCP itself): a service-account key made for this test stands in for them. The backend only loads it;
    # a request without a token never reaches Google.
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(_stand_in_service_account(tmp_path))
    env.setdefault("GOOGLE_CLOUD_PROJECT", "skeet-image-test")
    with deployment.process(cmd(), env, port=port, log_path=tmp_path / "server.log") as server:
        health = httpx.get(f"{server.url}/healthz", timeout=5)
        gated = httpx.get(f"{server.url}/v1/insights", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert gated.status_code == 401  # Firebase auth is on: no token, no data
    assert "auth=firebase" in server.output()


def test_the_dockerignore_matcher_follows_dockers_rules() -> None:
    assert dockerignore_admits("backend_stub/app.py")
    assert dockerignore_admits("assets/replay/README.md")
    assert not dockerignore_admits("assets/other/recording.jsonl.gz")
    assert not dockerignore_admits("services/market/__pycache__/types.cpython-311.pyc")


def _stand_in_service_account(tmp_path: Path) -> Path:
    """A service-account key file of the shape Google issues, with a key generated here (no GCP here)."""
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "skeet-image-test", "private_key_id": "test",
        "private_key": pem, "client_email": "skeet-api@skeet-image-test.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token",
    }))
    return path
