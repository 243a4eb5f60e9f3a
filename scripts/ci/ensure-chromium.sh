#!/usr/bin/env bash
# Makes sure a Chromium is installed for the console's browser test (playwright-core drives the
# system browser; no browser download from npm). Prints the browser's path on stdout.
#   CHROMIUM_PATH   the browser to use (default /usr/bin/chromium, Debian's package `chromium`)
# Installs Debian's `chromium` with apt-get when it is missing and we are root; otherwise says
# what to do and exits 1.
set -euo pipefail

BROWSER="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [[ -x "$BROWSER" ]]; then
  echo "$BROWSER"
  exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: $BROWSER is missing; installing Debian's chromium with apt-get ..." >&2
  log="$(mktemp)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "ensure-chromium: apt-get install chromium failed (above); install it by hand or set CHROMIUM_PATH" >&2
    exit 1
  fi
  rm -f "$log"
  if [[ -x "$BROWSER" ]]; then
    echo "$BROWSER"
    exit 0
  fi
  echo "ensure-chromium: chromium installed but $BROWSER is not there; set CHROMIUM_PATH to its binary" >&2
  exit 1
fi
echo "ensure-chromium: no Chromium at $BROWSER and cannot install it here (needs root and apt-get):" \
  "run 'sudo apt-get install chromium' (Debian/Ubuntu), or set CHROMIUM_PATH to a Chromium or Chrome binary" >&2
exit 1
