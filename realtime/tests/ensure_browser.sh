#!/usr/bin/env bash
# The browser tests drive Debian's chromium through Playwright (never a downloaded browser).
exec bash "$(dirname "$0")/../../todo_project/tests/ensure_debian_package.sh" \
  "${CHROMIUM_PATH:-/usr/bin/chromium}" chromium "the browser tests"
