#!/usr/bin/env bash
# ensure_debian_package.sh PROGRAM PACKAGE PURPOSE
# The tests use some of Debian's programs (chromium for the browser tests, redis-server for the
# Redis tests). Install PACKAGE when PROGRAM is missing and apt-get can; otherwise stop with a
# clear message, so that the tests that need it fail instead of skipping.
set -euo pipefail

PROGRAM="$1"
PACKAGE="$2"
PURPOSE="$3"

found() { [ -x "$PROGRAM" ] || command -v "$PROGRAM" >/dev/null 2>&1; }

if found; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      SUDO="sudo"
    else
      echo "$PROGRAM is missing and installing it needs root: apt-get install -y $PACKAGE" >&2
      exit 1
    fi
  fi
  echo "installing Debian's $PACKAGE for $PURPOSE"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$PACKAGE" >/dev/null
fi
if ! found; then
  echo "$PROGRAM is missing and could not be installed." >&2
  echo "  Install it for $PURPOSE (Debian: apt-get install -y $PACKAGE)." >&2
  exit 1
fi
