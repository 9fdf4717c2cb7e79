#!/usr/bin/env bash
# The end-to-end flow in the mobile dependency profile (mobile/README.md): a venv holding only what a phone
# build installs — the client's runtime dependencies under Flet's mobile wheel versions — runs the phone's
# side (gateway prices, a paper order, its fill through a Firestore listener on the emulator) against the
# backend and emulators run from .venv. Needs `make test`'s .venv and the emulators (.ci/install-emulators.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${SKEET_CI_PYTHON:-.venv/bin/python}
# Phones run CPython 3.12; use it where this machine has it, else say which Python the venv got.
PHONE_PY=""
for candidate in "$(command -v python3.12 || true)" "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
  # (a pyenv shim is on PATH whether or not it can run: try each)
  if [ -z "$PHONE_PY" ] && [ -n "$candidate" ] && "$candidate" -c pass 2>/dev/null; then PHONE_PY=$candidate; fi
done
if [ -z "$PHONE_PY" ]; then
  PHONE_PY=python3
  echo "mobile profile: no python3.12 here; the venv uses $($PHONE_PY --version) (phones run 3.12)" >&2
fi
VENV=${SKEET_MOBILE_VENV:-.venv-mobile}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
$PY -m mobile.profile check --platform android
$PY -m mobile.profile check --platform ios
$PY -m mobile.profile constraints > "$WORK/constraints.txt"
$PY -c "from mobile.profile import runtime_requirements; print('\n'.join(runtime_requirements('android')))" \
  > "$WORK/requirements.txt"
rm -rf "$VENV"
"$PHONE_PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: \
  -c "$WORK/constraints.txt" -r "$WORK/requirements.txt"
SKEET_MOBILE_PYTHON="$(cd "$VENV" && pwd)/bin/python" $PY -m pytest -q -ra tests/emulators/test_mobile_profile.py
