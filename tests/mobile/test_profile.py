"""The mobile dependency profile, resolved for real with pip against the package index: the client's phone
dependencies install from pure wheels and Flet's mobile wheels only, and the check catches what would not.

These need the index. Unreachable, they fail with `IndexUnreachable` saying so: a skip would report a phone
build as checked when it was not. Deselect them explicitly offline: `-m "not index"`.
"""

from __future__ import annotations

import pytest

from mobile.profile import (
    Resolved,
    constraints,
    flet_wheels,
    problems,
    resolve,
    runtime_requirements,
)

pytestmark = pytest.mark.index


def test_the_listed_versions_include_the_ones_the_issue_measured() -> None:
    wheels = flet_wheels()
    for name, version in {"aiohttp": "3.9.5", "cffi": "1.17.1", "cryptography": "43.0.1", "grpcio": "1.67.1",
                          "msgpack": "1.1.0", "numpy": "2.1.1", "protobuf": "5.28.3", "pydantic-core": "2.23.3",
                          "websockets": "13.0.1", "yarl": "1.11.1"}.items():
        assert wheels[name][0] == version
        assert f"{name}=={version}\n" in constraints(wheels)


def test_the_clients_phone_dependencies_resolve_within_flets_mobile_wheels() -> None:
    android, ios = runtime_requirements("android"), runtime_requirements("ios")
    assert any(r.startswith("google-cloud-firestore") for r in android)  # Firestore listeners on phones
    wheels = flet_wheels()
    for requirements in {tuple(android), tuple(ios)}:
        resolved = resolve(list(requirements), constraints(wheels))
        names = {item.name: item for item in resolved}
        assert {"flet", "httpx", "websockets", "google-cloud-firestore", "grpcio", "protobuf"} <= set(names)
        assert names["grpcio"].version == "1.67.1" and names["protobuf"].version == "5.28.3"
        assert "ccxt" not in names and "aiohttp" not in names  # the gateway, not an exchange library
        assert problems(resolved, wheels) == []


def test_the_check_names_binary_packages_a_phone_cannot_install() -> None:
    wheels = flet_wheels()
    # ccxt (4.4.82: the one that resolves with aiohttp 3.9.5) pulls aiodns → pycares, a binary package Flet
    # does not host (what the issue measured).
    found = problems(resolve(["ccxt==4.4.82"], constraints(wheels)), wheels)
    assert any(p.startswith("pycares ") and "Flet hosts no mobile wheel" in p for p in found), found

    newer = Resolved("grpcio", "1.68.0", "grpcio-1.68.0-cp312-cp312-manylinux_2_17_x86_64.whl")
    assert problems([newer], wheels) == ["grpcio 1.68.0 is binary and Flet hosts only 1.67.1 for phones."]
    sdist = Resolved("someday", "1.0", "someday-1.0.tar.gz")
    assert problems([sdist], wheels) == ["someday 1.0 has no wheel (it would be built from source)."]
    # A binary wheel with a pure twin at the same version is fine: the phone takes the pure one.
    fallback = Resolved("charset-normalizer", "3.4.0",
                        "charset_normalizer-3.4.0-cp312-cp312-manylinux_2_17_x86_64.whl")
    assert problems([fallback], wheels) == []
