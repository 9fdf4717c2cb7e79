#!/usr/bin/env bash
# System packages the test suite needs, installed from Debian's archive when this runs as root (CI, a
# fresh container); elsewhere it names what is missing and how to get it, and the suite fails loudly
# on whatever needs it. Then the emulators' own install (Java, Firestore emulator, firebase-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
# chromium: browser tests (Playwright drives Debian's build; never `playwright install`).
# gnome-keyring + dbus-x11: a real Secret Service for the keyring tests.
# libjemalloc2: the hosted web server runs on jemalloc, which gives ended sessions' memory back (soak test).
needed=()
command -v chromium >/dev/null || needed+=(chromium)
command -v gnome-keyring-daemon >/dev/null || needed+=(gnome-keyring)
command -v dbus-launch >/dev/null || needed+=(dbus-x11)
compgen -G "/usr/lib/*-linux-gnu/libjemalloc.so.2" >/dev/null || needed+=(libjemalloc2)
python3 -c "import venv, ensurepip" 2>/dev/null || needed+=(python3-venv)
if [ ${#needed[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update
    apt-get install -y --no-install-recommends "${needed[@]}"
  else
    echo "install-system: missing ${needed[*]}; install them (Debian: sudo apt-get install ${needed[*]})" >&2
  fi
fi
# google-cloud-cli-pubsub-emulator: the official Pub/Sub emulator (tests/scale), from Google's Cloud SDK
# apt repository, configured here only when apt has no candidate for it. Not optional: fail loudly.
PUBSUB_EMULATOR=${SKEET_PUBSUB_EMULATOR:-/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator}
if [ ! -x "$PUBSUB_EMULATOR" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-system: the Pub/Sub emulator is missing ($PUBSUB_EMULATOR); as root on Debian this script" \
         "installs google-cloud-cli-pubsub-emulator from Google's Cloud SDK apt repository" >&2
    exit 1
  fi
  if ! apt-cache policy google-cloud-cli-pubsub-emulator 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt-get update
    apt-get install -y --no-install-recommends ca-certificates curl gnupg
    curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg \
      | gpg --batch --yes --dearmor -o /usr/share/keyrings/cloud.google.gpg
    echo "deb [signed-by=/usr/share/keyrings/cloud.google.gpg] https://packages.cloud.google.com/apt cloud-sdk main" \
      > /etc/apt/sources.list.d/google-cloud-sdk.list
  fi
  apt-get update
  apt-get install -y --no-install-recommends google-cloud-cli-pubsub-emulator
  if [ ! -x "$PUBSUB_EMULATOR" ]; then
    echo "install-system: google-cloud-cli-pubsub-emulator installed but $PUBSUB_EMULATOR is not there" >&2
    exit 1
  fi
fi
if [ "$(id -u)" = 0 ] || { command -v java >/dev/null && command -v npm >/dev/null; }; then
  bash .ci/install-emulators.sh
else
  echo "install-system: Java 17 and Node 20 are needed for the emulator tests (see .ci/install-emulators.sh)" >&2
fi
