#!/usr/bin/env bash
# Checks GGUF files against an independent reader: installs @huggingface/gguf (the version
# package-lock.json pins) into tests/gguf_js/node_modules, then runs compare.mjs on each file.
#   tests/gguf_js/run.sh DSPARK_BINARY FILE.gguf...
# Exits nonzero if any file differs or cannot be read by either side.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 DSPARK_BINARY FILE.gguf..." >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
dspark=$1
shift

# npm ci empties node_modules and installs exactly the lock; skipped when the last install
# here was of this same lock (a copy of it is kept as the stamp).
stamp=$here/node_modules/.dspark-installed-lock.json
if ! cmp -s "$here/package-lock.json" "$stamp"; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$here/package-lock.json" "$stamp"
fi

status=0
for f in "$@"; do
  node "$here/compare.mjs" "$dspark" "$f" || status=1
done
exit $status
