#!/usr/bin/env bash
# The browser tests drive Debian's chromium through Playwright (never a downloaded browser).
# Install it when it is missing and apt-get can; otherwise stop with a clear message.
set -euo pipefail

CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      SUDO="sudo"
    else
      echo "ensure_browser: $CHROMIUM is missing and installing it needs root: apt-get install -y chromium" >&2
      exit 1
    fi
  fi
  echo "ensure_browser: installing Debian's chromium for the browser tests"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "ensure_browser: $CHROMIUM is missing and could not be installed." >&2
  echo "  Install Chromium (Debian: apt-get install -y chromium) or set CHROMIUM_PATH." >&2
  exit 1
fi
