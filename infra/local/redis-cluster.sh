#!/usr/bin/env bash
# A local Redis Cluster of three masters (no replicas) on loopback, for running the pipeline or
# its tests against a Cluster (TEST_REDIS_TOPOLOGY=cluster):
#   infra/local/redis-cluster.sh up     start it (or find it running), wait for cluster_state:ok
#   infra/local/redis-cluster.sh down   stop the nodes this script started (nothing else)
#   infra/local/redis-cluster.sh status
#
# stdout (only, for `up` and `status`): REDIS_CLUSTER_NODES=127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103
# Progress goes to stderr. Idempotent: `up` on a healthy cluster of ours is a quick no-op; one
# that is half there (a node died) is stopped and created afresh (no persistence: the data is a
# test's). A port held by another process is an error.
#
# Layout: <repo>/.local/redis-cluster/<port>/ (nodes.conf, redis.pid, redis.log).
# Env: REDIS_CLUSTER_PORTS ("7101 7102 7103"), READY_TIMEOUT (30 s).
set -euo pipefail
# shellcheck disable=SC2034  # read by lib.sh's log functions
LOG_TAG=redis-cluster
# shellcheck source=infra/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

read -r -a PORTS <<<"${REDIS_CLUSTER_PORTS:-7101 7102 7103}"
CLUSTER_DIR="$LOCAL_DIR/redis-cluster"
CLUSTER_READY_TIMEOUT="${READY_TIMEOUT:-30}"
[[ ${#PORTS[@]} -ge 3 ]] || die "REDIS_CLUSTER_PORTS names ${#PORTS[@]} ports; a Redis Cluster needs at least 3 masters"

node_dir() { printf '%s/%s' "$CLUSTER_DIR" "$1"; }

# node_pid PORT: the pid of the node this script started on PORT, when it still runs
node_pid() {
  local dir pid cmd cwd
  dir="$(node_dir "$1")"
  [[ -f "$dir/redis.pid" ]] || return 1
  pid="$(tr -dc '0-9' <"$dir/redis.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null || true)"
  [[ "$cmd" == *redis-server* && "$cwd" == "$dir" ]] || return 1
  printf '%s' "$pid"
}

cluster_ok() {
  local port
  for port in "${PORTS[@]}"; do
    timeout 3 redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
  done
}

nodes_line() {
  local list=() port
  for port in "${PORTS[@]}"; do list+=("127.0.0.1:$port"); done
  local IFS=,
  printf 'REDIS_CLUSTER_NODES=%s\n' "${list[*]}"
}

stop_nodes() {
  local port pid
  for port in "${PORTS[@]}"; do
    pid="$(node_pid "$port")" || continue
    log "stopping the node on :$port (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { warn "node :$port did not stop on TERM; killing it"; kill -9 "$pid" 2>/dev/null || true; }
    rm -f "$(node_dir "$port")/redis.pid"
  done
}

up() {
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found (Debian: apt-get install -y redis-server)"
  command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found (Debian: apt-get install -y redis-tools)"
  local port running=0
  for port in "${PORTS[@]}"; do node_pid "$port" >/dev/null && running=$((running + 1)); done
  if [[ $running -eq ${#PORTS[@]} ]] && cluster_ok; then
    log "already running: ${PORTS[*]}, cluster_state:ok"
    nodes_line
    return 0
  fi
  if [[ $running -gt 0 ]]; then
    warn "only part of the cluster answers ($running of ${#PORTS[@]} nodes, or not ok): creating it afresh"
    stop_nodes
  fi
  for port in "${PORTS[@]}"; do
    tcp_open "$port" && die "port $port is taken by $(who_listens "$port"); choose others with REDIS_CLUSTER_PORTS"
  done
  for port in "${PORTS[@]}"; do
    local dir
    dir="$(node_dir "$port")"
    rm -rf "$dir"
    mkdir -p "$dir"
    redis-server --daemonize yes --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file nodes.conf --cluster-node-timeout 5000 --save '' --appendonly no \
      --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" </dev/null >&2 \
      || die "redis-server on :$port failed to start; see $dir/redis.log"
  done
  for port in "${PORTS[@]}"; do
    for _ in $(seq 1 100); do redis_ping "$port" && break; sleep 0.1; done
    redis_ping "$port" || die "the node on :$port did not answer PING; see $(node_dir "$port")/redis.log"
  done
  local addresses=()
  for port in "${PORTS[@]}"; do addresses+=("127.0.0.1:$port"); done
  log "creating the cluster: ${addresses[*]} (masters only)"
  redis-cli --cluster create "${addresses[@]}" --cluster-replicas 0 --cluster-yes >"$CLUSTER_DIR/create.log" 2>&1 \
    || { tail -n 20 "$CLUSTER_DIR/create.log" >&2; stop_nodes; die "redis-cli --cluster create failed"; }
  local waited=0
  until cluster_ok; do
    [[ $waited -ge $((CLUSTER_READY_TIMEOUT * 10)) ]] && { stop_nodes; die "no cluster_state:ok within ${CLUSTER_READY_TIMEOUT} s"; }
    sleep 0.1
    waited=$((waited + 1))
  done
  log "ready: cluster_state:ok on ${PORTS[*]}"
  nodes_line
}

case "${1:-}" in
  up) up ;;
  down) stop_nodes; log "stopped (nodes not started here were left alone)" ;;
  status)
    if cluster_ok; then log "cluster_state:ok on ${PORTS[*]}"; nodes_line; else log "not running (or not ok) on ${PORTS[*]}"; exit 1; fi ;;
  -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
  *) die "usage: infra/local/redis-cluster.sh up|down|status" ;;
esac
