#!/usr/bin/env bash
# Runs one benchmark on another commit and on this checkout, alternately, against the same
# infrastructure, so that a change is judged against its base on the same machine in the same
# hour (these machines swing 2x from day to day; only a side-by-side ratio means anything).
#
#   bash bench/side-by-side.sh BASE_REF BENCH [ROUNDS] [-- BENCH_ARGS...]
#
#   BASE_REF  the commit to compare with (a worktree of it is made under .local/bench/base-<sha>)
#   BENCH     the benchmark's name: processor, ingest, outbound, e2e, ... (bench/<BENCH>.bench.ts)
#   ROUNDS    how many runs of each, alternating base / this (default 2)
#   BENCH_ARGS passed to both runs (e.g. -- --runs 2 --seconds 6 for bench:ingest)
#
# The infrastructure comes from the environment as for every bench (KAFKA_BROKERS,
# SCHEMA_REGISTRY_URL, REDIS_URL; `set -a; . .local/env; set +a` after `npm run infra:up`).
# BENCH_* variables pass through to both. Each run's whole output is kept in
# .local/bench/side-by-side/<BENCH>-<base|this>-<round>.log; its last SHOW_LINES lines (30), where
# each bench prints its figures, are printed.
set -euo pipefail

usage() { sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
[ $# -ge 2 ] || { usage >&2; exit 2; }
BASE_REF="$1" BENCH="$2"
shift 2
ROUNDS=2
if [ $# -gt 0 ] && [ "$1" != "--" ]; then ROUNDS="$1"; shift; fi
[ "${1:-}" = "--" ] && shift
BENCH_ARGS=("$@")

cd "$(dirname "${BASH_SOURCE[0]}")/.."
THIS="$(pwd -P)"
[ -f "bench/$BENCH.bench.ts" ] || { echo "no bench/$BENCH.bench.ts in this checkout" >&2; exit 2; }
BASE_SHA="$(git rev-parse --short "$BASE_REF^{commit}")" || { echo "unknown commit: $BASE_REF" >&2; exit 2; }
BASE="$THIS/.local/bench/base-$BASE_SHA"
OUT="$THIS/.local/bench/side-by-side"
mkdir -p "$OUT"

if [ ! -d "$BASE" ]; then
  echo "[side-by-side] worktree of $BASE_SHA at $BASE" >&2
  git worktree add --detach "$BASE" "$BASE_SHA" >/dev/null
fi
if [ ! -d "$BASE/node_modules" ]; then
  echo "[side-by-side] npm ci in the base worktree (once) ..." >&2
  (cd "$BASE" && npm ci --no-audit --no-fund >/dev/null)
fi
[ -f "$BASE/bench/$BENCH.bench.ts" ] || { echo "$BASE_SHA has no bench/$BENCH.bench.ts" >&2; exit 2; }


for round in $(seq 1 "$ROUNDS"); do
  for which in base this; do
    dir="$THIS"
    [ "$which" = base ] && dir="$BASE"
    log="$OUT/$BENCH-$which-$round.log"
    echo "[side-by-side] round $round/$ROUNDS: $which ($([ "$which" = base ] && echo "$BASE_SHA" || git rev-parse --short HEAD)) ..." >&2
    if ! (cd "$dir" && node "bench/$BENCH.bench.ts" "${BENCH_ARGS[@]}") >"$log" 2>&1; then
      echo "[side-by-side] the $which run failed; its output: $log" >&2
      exit 1
    fi
    echo "== $BENCH, $which, round $round"
    tail -n "${SHOW_LINES:-30}" "$log"
  done
done
echo "[side-by-side] every run's output: $OUT/$BENCH-*.log" >&2
