#!/usr/bin/env bash
# Without REDIS_URL, the Redis tests start a redis-server of their own (conftest.py: redis_url),
# never the machine's shared one.
if [ -n "${REDIS_URL:-}" ]; then
  exit 0
fi
exec bash "$(dirname "$0")/../../todo_project/tests/ensure_debian_package.sh" \
  redis-server redis-server "the Redis tests"
