#!/usr/bin/env bash
# Talks to `dspark serve` with the official OpenAI Node client (the npm package openai, the
# version package-lock.json pins), as users' programs do: installs it into
# tests/openai_js/node_modules, starts the server on a free port and runs client.mjs against it.
#   tests/openai_js/run.sh DSPARK_BINARY MODEL
# Exits nonzero if the server does not start or any check in client.mjs fails.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 DSPARK_BINARY MODEL" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
dspark=$1
model=$2

# npm ci empties node_modules and installs exactly the lock; skipped when the last install
# here was of this same lock (a copy of it is kept as the stamp).
stamp=$here/node_modules/.dspark-installed-lock.json
if ! cmp -s "$here/package-lock.json" "$stamp"; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$here/package-lock.json" "$stamp"
fi

# The server picks a free port (--port 0) and names it on stderr; the trap stops it however
# this script ends.
work=$(mktemp -d "${TMPDIR:-/tmp}/dspark-openai-js.XXXXXX")
log=$work/server.log
server=""
# shellcheck disable=SC2317  # run by the trap
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
"$dspark" serve -m "$model" --spec ngram --port 0 --parallel 4 --api-key test-key -t 2 2>"$log" &
server=$!
port=""
for _ in $(seq 600); do  # up to 60 s
  port=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$log" | head -n 1)
  [ -n "$port" ] && break
  if ! kill -0 "$server" 2>/dev/null; then
    echo "FAIL: dspark serve exited before listening:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "FAIL: dspark serve did not report a port within 60 s:" >&2
  cat "$log" >&2
  exit 1
fi
echo "dspark serve listening on port $port" >&2

status=0
node "$here/client.mjs" "http://127.0.0.1:$port/v1" || status=$?
if [ $status -ne 0 ]; then
  echo "--- server log ---" >&2
  tail -n 50 "$log" >&2
fi
exit $status
