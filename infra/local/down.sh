#!/usr/bin/env bash
# Stop what infra/local/up.sh started (found through <repo>/.local/run/<name>.pid):
#   infra/local/down.sh                  stop kafka (or the cluster's nodes), apicurio and redis (redis only if up.sh started it)
#   infra/local/down.sh kafka apicurio   stop only these (what `LOCAL_INFRA_STARTED` from up.sh lists;
#                                        a cluster's nodes are kafka-controller, kafka-1 .. kafka-N)
#   infra/local/down.sh --purge          also delete <repo>/.local/kafka-data and .local/kafka-cluster (topics, offsets, cluster ids)
# A Redis that was already running before up.sh (no pid file of ours) is never touched.
# Each process gets SIGTERM, then SIGKILL after STOP_TIMEOUT seconds (default 30). A cluster's
# brokers stop before its controller (a broker's controlled shutdown asks the controller).
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
    kafka | apicurio | redis | kafka-controller) names+=("$a") ;;
    kafka-[1-9]) names+=("$a") ;;
    -h | --help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$a'. Usage: infra/local/down.sh [--purge] [kafka] [kafka-controller] [kafka-<i>] [apicurio] [redis]" ;;
  esac
done
if [[ ${#names[@]} -eq 0 ]]; then
  names=(kafka apicurio redis)
  mapfile -t cluster < <(cluster_nodes)
  names+=("${cluster[@]}")
fi

mkdir -p "$RUN_DIR"
# up.sh runs down.sh itself on failure while holding the lock: don't wait for ourselves
[[ -n "${LOCAL_INFRA_LOCK_HELD:-}" ]] || take_lock

# stop_all NAME...: SIGTERM to every target (they shut down in parallel), then wait, SIGKILL stragglers.
stop_all() {
  local name pid deadline
  declare -A victims=()
  for name in "$@"; do
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
}
first=() last=()
for name in "${names[@]}"; do
  if [[ "$name" == kafka-controller ]]; then last+=("$name"); else first+=("$name"); fi
done
[[ ${#first[@]} -eq 0 ]] || stop_all "${first[@]}"
[[ ${#last[@]} -eq 0 ]] || stop_all "${last[@]}"

cluster_runs() {
  local name
  for name in $(cluster_nodes); do our_pid "$name" >/dev/null && return 0; done
  return 1
}

if [[ $purge == 1 ]]; then
  if pid="$(our_pid kafka)"; then
    die "--purge: Kafka (pid $pid) still runs, so its data stays. Run infra/local/down.sh --purge without naming components (or include kafka)."
  fi
  if cluster_runs; then
    die "--purge: nodes of the Kafka cluster still run, so its data stays. Run infra/local/down.sh --purge without naming components."
  fi
  if [[ -d "$KAFKA_DATA" ]]; then
    rm -rf "$KAFKA_DATA"
    log "purged ${KAFKA_DATA#"$REPO"/} (next up.sh formats fresh storage)"
  else
    log "--purge: ${KAFKA_DATA#"$REPO"/} does not exist; nothing to purge"
  fi
  if [[ -d "$KAFKA_CLUSTER_DATA" ]]; then
    rm -rf "$KAFKA_CLUSTER_DATA"
    log "purged ${KAFKA_CLUSTER_DATA#"$REPO"/} (next up.sh --brokers N formats fresh storage)"
  fi
fi

# A cluster's node configurations tell status.sh and broker.sh that a cluster is up: drop them
# once no node runs (up.sh --brokers N writes them again; the data stays unless --purge).
if ! cluster_runs; then rm -f "$RUN_DIR"/kafka-controller.properties "$RUN_DIR"/kafka-[0-9]*.properties; fi

# .local/env describes running infra; drop it once no JVM of ours runs
if ! our_pid kafka >/dev/null && ! our_pid apicurio >/dev/null && ! cluster_runs; then
  rm -f "$ENV_FILE"
fi
log "done in $(_elapsed)"
