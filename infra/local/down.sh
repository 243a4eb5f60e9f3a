#!/usr/bin/env bash
# Stop what infra/local/up.sh started (found through <repo>/.local/run/<name>.pid):
#   infra/local/down.sh                  stop kafka, apicurio and redis (redis only if up.sh started it)
#   infra/local/down.sh kafka apicurio   stop only these (what `LOCAL_INFRA_STARTED` from up.sh lists)
#   infra/local/down.sh --purge          also delete <repo>/.local/kafka-data (topics, offsets, cluster id)
# A Redis that was already running before up.sh (no pid file of ours) is never touched.
# Each process gets SIGTERM, then SIGKILL after STOP_TIMEOUT seconds (default 30).
set -euo pipefail
# shellcheck disable=SC2034  # read by lib.sh's log functions
LOG_TAG=down
# shellcheck source=infra/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STOP_TIMEOUT="${STOP_TIMEOUT:-30}"
purge=0
names=()
for a in "$@"; do
  case "$a" in
    --purge) purge=1 ;;
    kafka | apicurio | redis) names+=("$a") ;;
    -h | --help) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$a'. Usage: infra/local/down.sh [--purge] [kafka] [apicurio] [redis]" ;;
  esac
done
[[ ${#names[@]} -gt 0 ]] || names=(kafka apicurio redis)

mkdir -p "$RUN_DIR"
# up.sh runs down.sh itself on failure while holding the lock: don't wait for ourselves
[[ -n "${LOCAL_INFRA_LOCK_HELD:-}" ]] || take_lock

# Phase 1: SIGTERM to every target (they shut down in parallel); phase 2: wait, SIGKILL stragglers.
declare -A victims=()
for name in "${names[@]}"; do
  if pid="$(our_pid "$name")"; then
    log "$name: stopping pid $pid (SIGTERM, SIGKILL after ${STOP_TIMEOUT}s) ..."
    kill -TERM "$pid" 2>/dev/null || true
    victims[$name]="$pid"
  elif [[ "$name" == redis ]] && redis_ping "$REDIS_PORT"; then
    log "redis: the Redis on 127.0.0.1:$REDIS_PORT was not started by up.sh; leaving it alone"
  else
    log "$name: not running (nothing of up.sh's to stop)"
  fi
done
for name in "${!victims[@]}"; do
  pid="${victims[$name]}"
  deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    warn "$name: pid $pid still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && die "$name: pid $pid survived SIGKILL (zombie or D state?); check: ps -o pid,stat,cmd -p $pid"
  fi
  rm -f "$(pid_file "$name")" "$RUN_DIR/$name.port"
  log "$name: stopped"
done

if [[ $purge == 1 ]]; then
  if pid="$(our_pid kafka)"; then
    die "--purge: Kafka (pid $pid) still runs, so its data stays. Run infra/local/down.sh --purge without naming components (or include kafka)."
  fi
  if [[ -d "$KAFKA_DATA" ]]; then
    rm -rf "$KAFKA_DATA"
    log "purged ${KAFKA_DATA#"$REPO"/} (next up.sh formats fresh storage)"
  else
    log "--purge: ${KAFKA_DATA#"$REPO"/} does not exist; nothing to purge"
  fi
fi

# .local/env describes running infra; drop it once neither JVM of ours runs
if ! our_pid kafka >/dev/null && ! our_pid apicurio >/dev/null; then
  rm -f "$ENV_FILE"
fi
log "done in $(_elapsed)"
