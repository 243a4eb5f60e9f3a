#!/usr/bin/env bash
# A local Redis behind Sentinel on loopback: one master, one replica, three sentinels watching
# the master under the name "pipeline" (quorum 2), for running the pipeline or a test through
# Sentinel and failing over (`redis-cli -p <sentinel port> SENTINEL FAILOVER pipeline`):
#   infra/local/redis-sentinel.sh up     start it (or find it running), wait until the sentinels know the replica
#   infra/local/redis-sentinel.sh down   stop the processes this script started (nothing else)
#   infra/local/redis-sentinel.sh kill-master   kill -9 the server the sentinels name master now;
#                                        prints its port (a fault to fail over from)
#   infra/local/redis-sentinel.sh start PORT    start a killed data server again, as a replica of
#                                        the master the sentinels name now (never as a second,
#                                        empty master)
#
# stdout (only, for `up`): REDIS_SENTINELS=127.0.0.1:7121,127.0.0.1:7122,127.0.0.1:7123
#                          REDIS_SENTINEL_NAME=pipeline
# Progress goes to stderr. Idempotent: `up` on a complete set of ours is a quick no-op; a set
# that is half there is stopped and started afresh (no persistence).
#
# Layout: <repo>/.local/redis-sentinel/<port>/ (redis.pid, redis.log, sentinel.conf).
# Env: REDIS_SENTINEL_DATA_PORTS ("7111 7112": master, replica),
#      REDIS_SENTINEL_PORTS ("7121 7122 7123"), READY_TIMEOUT (30 s).
set -euo pipefail
# shellcheck disable=SC2034  # read by lib.sh's log functions
LOG_TAG=redis-sentinel
# shellcheck source=infra/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

read -r -a DATA_PORTS <<<"${REDIS_SENTINEL_DATA_PORTS:-7111 7112}"
read -r -a SENTINEL_PORTS <<<"${REDIS_SENTINEL_PORTS:-7121 7122 7123}"
MASTER_NAME=pipeline
SENTINEL_DIR="$LOCAL_DIR/redis-sentinel"
SENTINEL_READY_TIMEOUT="${READY_TIMEOUT:-30}"
[[ ${#DATA_PORTS[@]} -eq 2 ]] || die "REDIS_SENTINEL_DATA_PORTS names ${#DATA_PORTS[@]} ports; expected 2 (master, replica)"
[[ ${#SENTINEL_PORTS[@]} -ge 3 ]] || die "REDIS_SENTINEL_PORTS names ${#SENTINEL_PORTS[@]} ports; expected at least 3"
ALL_PORTS=("${DATA_PORTS[@]}" "${SENTINEL_PORTS[@]}")

proc_dir() { printf '%s/%s' "$SENTINEL_DIR" "$1"; }

# proc_pid PORT: the pid of the process this script started on PORT, when it still runs
proc_pid() {
  local dir pid cmd cwd
  dir="$(proc_dir "$1")"
  [[ -f "$dir/redis.pid" ]] || return 1
  pid="$(tr -dc '0-9' <"$dir/redis.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null || true)"
  [[ "$cmd" == *redis-* && "$cwd" == "$dir" ]] || return 1
  printf '%s' "$pid"
}

# ready: every sentinel knows the master and one replica
ready() {
  local port
  for port in "${SENTINEL_PORTS[@]}"; do
    timeout 3 redis-cli -h 127.0.0.1 -p "$port" sentinel replicas "$MASTER_NAME" 2>/dev/null | grep -q '^ip$' || return 1
  done
}

print_env() {
  local list=() port
  for port in "${SENTINEL_PORTS[@]}"; do list+=("127.0.0.1:$port"); done
  local IFS=,
  printf 'REDIS_SENTINELS=%s\nREDIS_SENTINEL_NAME=%s\n' "${list[*]}" "$MASTER_NAME"
}

stop_all() {
  local port pid
  for port in "${ALL_PORTS[@]}"; do
    pid="$(proc_pid "$port")" || continue
    log "stopping :$port (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { warn ":$port did not stop on TERM; killing it"; kill -9 "$pid" 2>/dev/null || true; }
    rm -f "$(proc_dir "$port")/redis.pid"
  done
}

up() {
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found (Debian: apt-get install -y redis-server)"
  local port running=0
  for port in "${ALL_PORTS[@]}"; do proc_pid "$port" >/dev/null && running=$((running + 1)); done
  if [[ $running -eq ${#ALL_PORTS[@]} ]] && ready; then
    log "already running: data ${DATA_PORTS[*]}, sentinels ${SENTINEL_PORTS[*]}"
    print_env
    return 0
  fi
  if [[ $running -gt 0 ]]; then
    warn "only part of it runs ($running of ${#ALL_PORTS[@]}): starting afresh"
    stop_all
  fi
  for port in "${ALL_PORTS[@]}"; do
    tcp_open "$port" && die "port $port is taken by $(who_listens "$port"); choose others (see --help)"
  done
  local master="${DATA_PORTS[0]}" replica="${DATA_PORTS[1]}" dir
  for port in "$master" "$replica"; do
    dir="$(proc_dir "$port")"
    rm -rf "$dir"
    mkdir -p "$dir"
    local follow=()
    [[ $port == "$replica" ]] && follow=(--replicaof 127.0.0.1 "$master")
    redis-server --daemonize yes --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "${follow[@]}" </dev/null >&2 \
      || die "redis-server on :$port failed to start; see $dir/redis.log"
  done
  for port in "${SENTINEL_PORTS[@]}"; do
    dir="$(proc_dir "$port")"
    rm -rf "$dir"
    mkdir -p "$dir"
    # Sentinel rewrites its file (what it learns: replicas, other sentinels, the epoch).
    cat >"$dir/sentinel.conf" <<EOF
port $port
bind 127.0.0.1
daemonize yes
dir $dir
pidfile $dir/redis.pid
logfile $dir/redis.log
sentinel monitor $MASTER_NAME 127.0.0.1 $master 2
sentinel down-after-milliseconds $MASTER_NAME 2000
sentinel failover-timeout $MASTER_NAME 10000
sentinel parallel-syncs $MASTER_NAME 1
EOF
    redis-server "$dir/sentinel.conf" --sentinel </dev/null >&2 || die "sentinel on :$port failed to start; see $dir/redis.log"
  done
  local waited=0
  until ready; do
    [[ $waited -ge $((SENTINEL_READY_TIMEOUT * 10)) ]] && { stop_all; die "the sentinels did not see the replica within ${SENTINEL_READY_TIMEOUT} s"; }
    sleep 0.1
    waited=$((waited + 1))
  done
  log "ready: master :$master, replica :$replica, sentinels ${SENTINEL_PORTS[*]}"
  print_env
}

# current_master: the port the sentinels name master now (the first sentinel that answers)
current_master() {
  local port answer
  for port in "${SENTINEL_PORTS[@]}"; do
    answer="$(timeout 3 redis-cli -h 127.0.0.1 -p "$port" sentinel get-master-addr-by-name "$MASTER_NAME" 2>/dev/null | sed -n 2p)"
    [[ "$answer" =~ ^[0-9]+$ ]] && { printf '%s' "$answer"; return 0; }
  done
  return 1
}

kill_master() {
  local master pid
  master="$(current_master)" || die "no sentinel answers on ${SENTINEL_PORTS[*]}: is it up?"
  pid="$(proc_pid "$master")" || die "the master :$master is not a server this script started (or is down already)"
  kill -9 "$pid"
  log "killed -9 the master :$master (pid $pid)"
  printf '%s\n' "$master"
}

start_data() {
  local port="${1:-}" master dir
  [[ " ${DATA_PORTS[*]} " == *" $port "* ]] || die "start takes one of the data ports ${DATA_PORTS[*]} (got '$port')"
  proc_pid "$port" >/dev/null && { log ":$port runs already"; return 0; }
  master="$(current_master)" || die "no sentinel answers on ${SENTINEL_PORTS[*]}: is it up?"
  [[ "$master" == "$port" ]] && die "the sentinels still name :$port master (not failed over yet): wait, then start it"
  dir="$(proc_dir "$port")"
  mkdir -p "$dir"
  redis-server --daemonize yes --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --replicaof 127.0.0.1 "$master" </dev/null >&2 \
    || die "redis-server on :$port failed to start; see $dir/redis.log"
  log "started :$port as a replica of :$master"
}

case "${1:-}" in
  up) up ;;
  kill-master) kill_master ;;
  start) start_data "${2:-}" ;;
  down) stop_all; log "stopped (processes not started here were left alone)" ;;
  -h | --help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
  *) die "usage: infra/local/redis-sentinel.sh up|down|kill-master|start PORT" ;;
esac
