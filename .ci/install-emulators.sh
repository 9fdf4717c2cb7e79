#!/usr/bin/env bash
# Installs what tests/emulators needs, reproducibly, on Debian/Ubuntu (called by .ci/run):
#   - Java 17 and the Cloud Firestore emulator jar (Debian package google-cloud-cli-firestore-emulator,
#     from Google's Cloud SDK apt repository when it is configured);
#   - Node.js >= 20 and firebase-tools (the Auth emulator), installed into tests/emulators/node_modules
#     from the committed package-lock.json with `npm ci` (never a global install).
# Idempotent: installs only what is missing. The emulator tests skip, saying why, only when Java, the jar
# or Node is absent; everything else missing makes them fail.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
JAR=${SKEET_FIRESTORE_EMULATOR_JAR:-/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar}

packages=()
command -v java >/dev/null || packages+=(openjdk-17-jre-headless)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs)
  # Debian splits npm out of nodejs; NodeSource's nodejs ships it.
  apt-cache show npm >/dev/null 2>&1 && packages+=(npm)
fi
if [ ! -f "$JAR" ]; then
  if apt-cache policy google-cloud-cli-firestore-emulator 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    packages+=(google-cloud-cli-firestore-emulator)
  else
    echo "install-emulators: no apt candidate for google-cloud-cli-firestore-emulator (Google's Cloud SDK" \
         "apt repository is not configured); the Firestore emulator tests will skip." >&2
  fi
fi
if [ ${#packages[@]} -gt 0 ]; then
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${packages[@]}"
fi

if command -v java >/dev/null; then
  java_major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')
  if [ "${java_major:-0}" -lt 17 ]; then
    echo "install-emulators: Java ${java_major:-?} found; the Firestore emulator needs Java 17 or later" >&2
    exit 1
  fi
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "install-emulators: Node.js $node_major found; firebase-tools 15 needs Node 20 or later" \
       "(Debian 12 ships 18: add NodeSource's node_20.x repository)" >&2
  exit 1
fi
# `npm ci` starts from an empty node_modules (minutes): skip it when the lockfile has not changed since.
stamp=tests/emulators/node_modules/.skeet-lock.sha256
lock_sum=$(sha256sum tests/emulators/package-lock.json | cut -d' ' -f1)
if [ ! -x tests/emulators/node_modules/.bin/firebase ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]; then
  (cd tests/emulators && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" > "$stamp"
fi
test -x tests/emulators/node_modules/.bin/firebase
echo "install-emulators: Java $(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.version = //p')," \
     "Firestore emulator $( [ -f "$JAR" ] && echo present || echo absent )," \
     "Node $(node --version), firebase-tools $(tests/emulators/node_modules/.bin/firebase --version)"
