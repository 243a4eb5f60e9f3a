#!/usr/bin/env bash
# bash scripts/dev.sh start|test|<any npm script> [args]
# Runs an npm script with Node >= 22 (installed from the npm registry's `node` package into
# .cache/node when the machine's is older), after `npm ci` when node_modules is missing or stale.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ $# -ge 1 ] || { echo "usage: bash scripts/dev.sh start|test|<npm script> [args]" >&2; exit 2; }
node_dir="$(bash scripts/ensure-node.sh)"
export PATH="$node_dir:$PATH"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[dev] npm ci (Node $(node --version)) ..." >&2
  npm ci --no-audit --no-fund >&2
fi
script="$1"
shift
exec npm run --silent "$script" -- "$@"
