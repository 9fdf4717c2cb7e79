"""What `flet build` will read, checked here where it cannot run (it downloads a Flutter SDK): the
`[tool.flet]` settings parse and hold the keys flet-cli 1.0.5 looks up, and the icon and splash images
exist at the sizes the platforms want. PNG headers are read with the standard library."""

from __future__ import annotations

import re
import struct
import tomllib
import zlib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEX_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
# flet-cli's cross-platform permission names (build_base.py `cross_platform_permissions`).
FLET_PERMISSIONS = {"location", "camera", "microphone", "photo_library", "biometric"}


def png_header(path: Path) -> dict[str, Any]:
    """Width, height and colour type from a PNG's IHDR chunk (its CRC checked)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    body = data[16:29]
    (crc,) = struct.unpack(">I", data[29:33])
    assert zlib.crc32(kind + body) == crc, f"{path.name}: corrupt IHDR"
    width, height, depth, colour_type = struct.unpack(">IIBB", body[:10])
    return {"width": width, "height": height, "depth": depth, "alpha": colour_type in (4, 6),
            "chunks": _chunk_kinds(data)}


def _chunk_kinds(data: bytes) -> list[bytes]:
    kinds, at = [], 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        kinds.append(kind)
        at += 12 + length
    return kinds


@pytest.fixture(scope="module")
def flet() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)
    assert "flet" in project.get("tool", {}), "no [tool.flet] table in pyproject.toml"
    return project["tool"]["flet"]


def test_identity_keys_flet_build_reads(flet: dict[str, Any]) -> None:
    # build_base.py: tool.flet.product / org / bundle_id / company / copyright
    assert flet["product"] == "Skeet"
    assert re.fullmatch(r"[a-z][a-z0-9]*(\.[a-z][a-z0-9_]*)+", flet["org"])
    # Android's applicationId and Apple's bundle identifier rules, both at once.
    assert re.fullmatch(r"[a-z][a-z0-9]*(\.[a-z][a-z0-9_]*)+", flet["bundle_id"])
    assert flet["bundle_id"].startswith(flet["org"] + ".")
    assert flet["company"] and flet["copyright"]


def test_permissions_are_flet_names_and_network_is_granted(flet: dict[str, Any]) -> None:
    assert set(flet["permissions"]) <= FLET_PERMISSIONS
    assert flet["android"]["permission"]["android.permission.INTERNET"] is True


def test_entry_module_and_excludes(flet: dict[str, Any]) -> None:
    assert flet["app"]["module"] == "main"
    for path in flet["app"]["exclude"]:
        assert not Path(path).is_absolute()
    assert "tests" in flet["app"]["exclude"]


@pytest.mark.xfail(not (ROOT / "main.py").exists(), strict=True,
                   reason="flet build packages `main.py` at the project root: not written yet")
def test_entry_module_exists(flet: dict[str, Any]) -> None:
    entry = ROOT / f"{flet['app']['module']}.py"
    assert entry.exists()
    assert "client" in entry.read_text()


def test_colours_are_hex(flet: dict[str, Any]) -> None:
    colours = [flet["icon_background"], flet["android"]["adaptive_icon_background"],
               *flet["splash"].values(), flet["web"]["pwa_background_color"], flet["web"]["pwa_theme_color"]]
    for colour in colours:
        assert HEX_COLOUR.match(colour), colour


def test_web_build_never_asks_a_cdn(flet: dict[str, Any]) -> None:
    assert flet["web"]["cdn"] is False  # flet-cli: resolve_no_cdn() is `tool.flet.web.cdn == False`
    assert flet["web"]["renderer"] in ("auto", "canvaskit", "skwasm")
    assert flet["web"]["route_url_strategy"] in ("path", "hash")


def test_plist_values_are_types_flet_accepts(flet: dict[str, Any]) -> None:
    def supported(value: Any) -> bool:  # flet_cli.utils.plist.is_supported_plist_value
        if isinstance(value, dict):
            return all(isinstance(k, str) and supported(v) for k, v in value.items())
        if isinstance(value, list):
            return all(supported(v) for v in value)
        return isinstance(value, str | bool | int | float)

    assert flet["ios"]["info"]["NSAppTransportSecurity"] == {"NSAllowsLocalNetworking": True}
    assert supported(flet["ios"]["info"])


def test_app_icon_is_a_1024_square_without_alpha() -> None:
    header = png_header(ASSETS / "icon.png")
    # 1024 px is the largest size any platform asks for (iOS App Store, macOS); iOS rejects alpha there.
    assert (header["width"], header["height"]) == (1024, 1024)
    assert not header["alpha"]
    assert header["chunks"][-1] == b"IEND"


@pytest.mark.parametrize("name", ["splash.png", "splash_dark.png"])
def test_splash_images_are_1024_squares_with_transparency(name: str) -> None:
    header = png_header(ASSETS / name)
    # flet renders a 1024 px splash source at 256 dp/pt/CSS px on every density.
    assert (header["width"], header["height"]) == (1024, 1024)
    assert header["alpha"], "the mark is drawn on the splash colour: its background must be transparent"


def test_no_competing_icon_files_flet_would_prefer() -> None:
    # flet picks `icon_<platform>.*` before `icon.*`, and ranks .png first among same-named files.
    others = [p.name for p in ASSETS.glob("icon*.*") if p.name != "icon.png"]
    assert others == [], f"these would override or shadow assets/icon.png: {others}"


def test_flet_cli_reader_finds_every_setting() -> None:
    # The same accessor and dotted paths `flet build` uses (flet_cli/commands/build_base.py).
    from flet_cli.utils.pyproject_toml import load_pyproject_toml

    get = load_pyproject_toml(ROOT)
    for key in ("tool.flet.product", "tool.flet.org", "tool.flet.bundle_id", "tool.flet.company",
                "tool.flet.copyright", "tool.flet.app.module", "tool.flet.splash.color",
                "tool.flet.splash.dark_color", "tool.flet.android.adaptive_icon_background",
                "tool.flet.ios.info", "tool.flet.linux.categories", "tool.flet.web.pwa_theme_color",
                "project.name", "project.version", "project.description", "project.dependencies"):
        assert get(key) is not None, key
    assert get("tool.flet.permissions") == []
    assert get("tool.flet.web.cdn") is False
