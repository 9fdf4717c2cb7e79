"""The mobile dependency profile: does what `flet build apk|ipa` packages install from Flet's mobile wheels?

A phone build installs the client's runtime dependencies (`[project].dependencies` plus
`[tool.flet.android|ios].dependencies` in pyproject.toml) from pure wheels and the binary wheels Flet hosts
(`flet_wheels.toml`). `check()` resolves them with pip (`pip install --dry-run --report`, Flet's versions as
constraints, Python 3.12 as on the phones) and names every package that would not install there: a binary
package Flet does not host, a binary package at another version, or a package with no wheel at all. A binary
package that also ships a pure wheel at the resolved version (charset-normalizer does) is fine: the phone,
finding no binary wheel for itself, takes the pure one.

    python -m mobile.profile check [--platform android|ios]   # prints the problems, exit 1 if any
    python -m mobile.profile constraints > constraints.txt    # Flet's versions as pip constraints

It needs the package index (pip's configured indexes); unreachable, it fails and says so.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS = Path(__file__).resolve().parent / "flet_wheels.toml"
PHONE_PYTHON = "3.12"  # the interpreter flet build packages for Android and iOS


class IndexUnreachable(RuntimeError):
    """pip could not reach the package index, so the profile could not be checked."""


@dataclass(frozen=True, slots=True)
class Resolved:
    name: str  # normalised (PEP 503)
    version: str
    filename: str

    @property
    def pure(self) -> bool:
        return self.filename.endswith("-none-any.whl")

    @property
    def wheel(self) -> bool:
        return self.filename.endswith(".whl")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def flet_wheels(path: Path = WHEELS) -> dict[str, list[str]]:
    """Package (normalised) → the versions Flet hosts for phones."""
    table = tomllib.loads(path.read_text())["wheels"]
    return {normalise(name): list(versions) for name, versions in table.items()}


def constraints(wheels: dict[str, list[str]] | None = None) -> str:
    """One `name==version` line per hosted package (the first version listed)."""
    wheels = wheels if wheels is not None else flet_wheels()
    return "".join(f"{name}=={versions[0]}\n" for name, versions in sorted(wheels.items()))


def runtime_requirements(platform: str, pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """What `flet build <platform>` installs: the project's dependencies plus the platform's own."""
    data = tomllib.loads(pyproject.read_text())
    extra = data.get("tool", {}).get("flet", {}).get(platform, {}).get("dependencies", [])
    return list(data["project"]["dependencies"]) + list(extra)


def resolve(requirements: list[str], constraints_text: str) -> list[Resolved]:
    """What pip would install for `requirements` under the constraints, for the phones' Python."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "constraints.txt").write_text(constraints_text)
        report = tmp_path / "report.json"
        # --target + --python-version: resolve for 3.12 whatever runs this; --only-binary: wheels only, so
        # an sdist-only package shows up as a failure to resolve rather than a silent local build.
        result = _pip("install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
                      "--target", str(tmp_path / "target"), "--python-version", PHONE_PYTHON,
                      "--only-binary=:all:", "-c", str(tmp_path / "constraints.txt"), *requirements)
        if result.returncode != 0:
            raise _failure("resolve the mobile profile", result.stderr)
        items = json.loads(report.read_text())["install"]
    return [
        Resolved(normalise(i["metadata"]["name"]), i["metadata"]["version"],
                 i["download_info"]["url"].rsplit("/", 1)[-1])
        for i in items
    ]


def has_pure_wheel(name: str, version: str) -> bool:
    """Whether `name==version` ships a py3-none-any wheel (what a phone falls back to)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = _pip("download", "--no-deps", "--quiet", "--only-binary=:all:", "--platform", "any",
                      "--python-version", PHONE_PYTHON, "-d", tmp, f"{name}=={version}")
        if result.returncode == 0:
            return True
        if "No matching distribution" in result.stderr or "Could not find a version" in result.stderr:
            return False
        raise _failure(f"look for a pure wheel of {name} {version}", result.stderr)


def problems(resolved: list[Resolved], wheels: dict[str, list[str]]) -> list[str]:
    """One sentence per package a phone could not install."""
    out = []
    for item in resolved:
        hosted = wheels.get(item.name)
        if hosted is not None:
            if item.version not in hosted and not item.pure:
                out.append(f"{item.name} {item.version} is binary and Flet hosts only {', '.join(hosted)} for "
                           "phones.")
        elif not item.wheel:
            out.append(f"{item.name} {item.version} has no wheel (it would be built from source).")
        elif not item.pure and not has_pure_wheel(item.name, item.version):
            out.append(f"{item.name} {item.version} is binary ({item.filename}) and Flet hosts no mobile wheel "
                       "for it.")
    return out


def check(platform: str = "android") -> tuple[list[Resolved], list[str]]:
    wheels = flet_wheels()
    resolved = resolve(runtime_requirements(platform), constraints(wheels))
    return resolved, problems(resolved, wheels)


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=600, check=False)


def _failure(doing: str, stderr: str) -> Exception:
    unreachable = ("NewConnectionError", "Name or service not known", "Temporary failure in name resolution",
                   "Network is unreachable", "Connection refused", "ProxyError")
    tail = stderr.strip().splitlines()[-3:]
    if any(marker in stderr for marker in unreachable):
        return IndexUnreachable(f"pip could not reach the package index to {doing}: {' '.join(tail)}")
    return RuntimeError(f"pip could not {doing}: {' '.join(tail)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mobile.profile", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check_cmd = sub.add_parser("check", help="resolve the client's phone dependencies and list problems")
    check_cmd.add_argument("--platform", choices=("android", "ios"), default="android")
    sub.add_parser("constraints", help="print Flet's mobile wheel versions as pip constraints")
    args = parser.parse_args(argv)
    if args.command == "constraints":
        sys.stdout.write(constraints())
        return 0
    resolved, found = check(args.platform)
    for item in resolved:
        kind = "pure" if item.pure else "binary"
        print(f"{item.name}=={item.version}  {kind}")
    for problem in found:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    print(f"{len(resolved)} packages, {len(found)} problems ({args.platform}, Python {PHONE_PYTHON})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
