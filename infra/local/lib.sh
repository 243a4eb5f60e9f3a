# shellcheck shell=bash
# shellcheck disable=SC2034  # variables are used by the scripts that source this file
# Shared by infra/local/up.sh, down.sh and status.sh (sourced, not run).
#
# Layout (all git-ignored):
#   <repo>/.cache/kafka-libs-<ver>/   Kafka class path (mvn copy-dependencies), .complete marker
#   <repo>/.cache/apicurio-<ver>/     unpacked Apicurio Registry distribution, .complete marker
#   <repo>/.local/kafka-data/         KRaft log dirs (formatted once by kafka.tools.StorageTool)
#   <repo>/.local/kafka-cluster/      up.sh --brokers N: cluster.id, controller/ and 1/..N/ log dirs
#   <repo>/.local/logs/{kafka,apicurio,redis}.log, kafka-controller.log, kafka-<i>.log
#   <repo>/.local/run/<name>.pid      one per process that up.sh started (kafka, apicurio, redis,
#                                     kafka-controller, kafka-1 .. kafka-N)
#   <repo>/.local/run/<name>.port     the port it was started on
#   <repo>/.local/run/kafka-*.properties  a cluster node's configuration (broker.sh restarts from it)
#   <repo>/.local/run/last-up.started what the most recent up.sh started (may be empty)
#   <repo>/.local/env                 KAFKA_BROKERS / SCHEMA_REGISTRY_URL / REDIS_URL

LOCAL_INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO="$(cd "$LOCAL_INFRA_DIR/../.." && pwd -P)"
CACHE_DIR="$REPO/.cache"
LOCAL_DIR="$REPO/.local"
RUN_DIR="$LOCAL_DIR/run"
LOG_DIR="$LOCAL_DIR/logs"
KAFKA_DATA="$LOCAL_DIR/kafka-data"
KAFKA_CLUSTER_DATA="$LOCAL_DIR/kafka-cluster"
REDIS_DIR="$LOCAL_DIR/redis"
ENV_FILE="$LOCAL_DIR/env"

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
APICURIO_VERSION="${APICURIO_VERSION:-3.0.9}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
REGISTRY_PORT="${REGISTRY_PORT:-8081}"
REGISTRY_MANAGEMENT_PORT="${REGISTRY_MANAGEMENT_PORT:-19000}"
REDIS_PORT="${REDIS_PORT:-6379}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m}"
REGISTRY_HEAP_OPTS="${REGISTRY_HEAP_OPTS:--Xmx512m}"
READY_TIMEOUT="${READY_TIMEOUT:-120}"

KAFKA_LIBS="$CACHE_DIR/kafka-libs-$KAFKA_VERSION"
APICURIO_HOME="$CACHE_DIR/apicurio-$APICURIO_VERSION"
CCOMPAT_PATH="/apis/ccompat/v7"

_T0="$(date +%s%N)"
_elapsed() { local now; now="$(date +%s%N)"; printf '%d.%01ds' $(((now - _T0) / 1000000000)) $((((now - _T0) / 100000000) % 10)); }
log() { printf '[infra %s %7s] %s\n' "${LOG_TAG:-local}" "$(_elapsed)" "$*" >&2; }
warn() { printf '[infra %s %7s] WARNING: %s\n' "${LOG_TAG:-local}" "$(_elapsed)" "$*" >&2; }
die() { printf '[infra %s %7s] ERROR: %s\n' "${LOG_TAG:-local}" "$(_elapsed)" "$*" >&2; exit 1; }

# --- ports -----------------------------------------------------------------------------
# tcp_open PORT: true when something accepts a TCP connection on 127.0.0.1:PORT
tcp_open() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# who_listens PORT: best-effort description of the process listening on PORT
who_listens() {
  local out=""
  if command -v ss >/dev/null 2>&1; then
    out="$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -1 || true)"
  fi
  printf '%s' "${out:-unknown process}"
}

# http_status URL: prints the HTTP status code (000 when nothing answers)
http_status() {
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -m 3 -w '%{http_code}' "$1" 2>/dev/null || true
    return 0
  fi
  # fallback without curl: plain HTTP/1.0 over bash's /dev/tcp (host must be 127.0.0.1)
  local rest="${1#http://}" hostport path port line
  hostport="${rest%%/*}"; path="/${rest#*/}"; port="${hostport##*:}"
  line="$(timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$2" >&3; head -1 <&3' _ "$port" "$path" 2>/dev/null || true)"
  line="${line#HTTP/* }"
  printf '%s' "${line:0:3}" | grep -E '^[0-9]{3}$' || printf '000'
}

# redis_ping PORT: true when a Redis answers PONG on 127.0.0.1:PORT
redis_ping() {
  if command -v redis-cli >/dev/null 2>&1; then
    [[ "$(timeout 3 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null || true)" == "PONG" ]]
  else
    local r
    r="$(timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; printf "PING\r\n" >&3; head -c 7 <&3' _ "$1" 2>/dev/null || true)"
    [[ "$r" == +PONG* ]]
  fi
}

# --- our processes -----------------------------------------------------------------------
pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }

# is_ours NAME PID: the pid is alive and is the process up.sh started for NAME (guards
# against stale pid files whose number was reused by something else).
is_ours() {
  local name="$1" pid="$2" cmd cwd
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  case "$name" in
    kafka) [[ "$cmd" == *kafka.Kafka* && "$cmd" == *"$RUN_DIR/kafka-server.properties"* ]] ;;
    kafka-controller | kafka-[0-9]*) [[ "$cmd" == *kafka.Kafka* && "$cmd" == *"$RUN_DIR/$name.properties"* ]] ;;
    apicurio) [[ "$cmd" == *"-Dquarkus.http.port="* && "$cmd" == *"-Dlocal.infra.repo=$REPO"* ]] ;;
    redis)
      cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null || true)"
      [[ "$cmd" == *redis-server* && "$cwd" == "$REDIS_DIR" ]] ;;
    *) return 1 ;;
  esac
}

# our_pid NAME: prints the pid when NAME runs and is ours; removes a stale pid file
our_pid() {
  local f pid
  f="$(pid_file "$1")"
  [[ -f "$f" ]] || return 1
  pid="$(tr -dc '0-9' <"$f" 2>/dev/null || true)"
  if is_ours "$1" "$pid"; then
    printf '%s' "$pid"
    return 0
  fi
  rm -f "$f" "$RUN_DIR/$1.port"
  return 1
}

# recorded_port NAME: the port NAME was started on (empty when unknown)
recorded_port() { cat "$RUN_DIR/$1.port" 2>/dev/null || true; }

java_major() {
  local v
  v="$(java -version 2>&1 | head -1 | sed -E 's/.*version "([^"]+)".*/\1/')"
  v="${v#1.}"
  printf '%s' "${v%%[.+-]*}"
}

# take_lock: serialise up.sh and down.sh (fd 8 stays open, and locked, until the script exits;
# processes started meanwhile must not inherit it: start them with 8>&-).
take_lock() {
  mkdir -p "$RUN_DIR"
  exec 8>"$RUN_DIR/.lock"
  command -v flock >/dev/null 2>&1 || return 0
  flock -n 8 && return 0
  log "waiting for another infra/local/up.sh or down.sh to finish (lock $RUN_DIR/.lock) ..."
  flock -w 600 8 || die "another infra/local/up.sh or down.sh has held $RUN_DIR/.lock for 10 minutes; find it with: ps -ef | grep infra/local (or: fuser $RUN_DIR/.lock), stop it, and re-run."
}

mvn_args() {
  local a=(-B -q -Dstyle.color=never)
  if [[ -n "${MAVEN_REPO_LOCAL:-}" ]]; then a+=("-Dmaven.repo.local=$MAVEN_REPO_LOCAL"); fi
  printf '%s\n' "${a[@]}"
}

# --- Kafka cluster nodes (up.sh --brokers N) ------------------------------------------------
# One controller (kafka-controller, node 0, KAFKA_CONTROLLER_PORT) and brokers kafka-1..N
# (node i, port KAFKA_PORT + 100*(i-1)). Each has its properties file in RUN_DIR, written by
# up.sh; broker.sh restarts a broker from it.

# cluster_nodes: the names of the cluster's processes whose properties files exist, controller first
cluster_nodes() {
  local f
  [[ -f "$RUN_DIR/kafka-controller.properties" ]] && printf '%s\n' kafka-controller
  for f in "$RUN_DIR"/kafka-[0-9]*.properties; do
    [[ -f "$f" ]] || continue
    f="${f##*/}"; printf '%s\n' "${f%.properties}"
  done | sort -t- -k2 -n
}

# node_port NAME: the client port (broker) or controller port of a cluster node, from its properties
node_port() {
  sed -n -E 's#^listeners=[A-Z]+://127\.0\.0\.1:([0-9]+).*#\1#p' "$RUN_DIR/$1.properties" 2>/dev/null | head -1
}

# node_ready NAME: the node accepts connections and its current log says it started
node_ready() {
  local port; port="$(node_port "$1")"
  [[ -n "$port" ]] && tcp_open "$port" && grep -q "Kafka Server started" "$LOG_DIR/$1.log" 2>/dev/null
}

# --- starting processes (up.sh, broker.sh) ---------------------------------------------------
# Start a command detached (own session, stdin closed) with its pid written to PIDFILE.
spawn() { # PIDFILE LOGFILE WORKDIR CMD...
  local pidf="$1" logf="$2" wd="$3"; shift 3
  rm -f "$pidf"
  [[ -f "$logf" ]] && mv -f "$logf" "$logf.1"
  # The redirections cover the whole background subshell: nothing may keep the caller's
  # stdout (a $(...) pipe) open, or the caller would wait for the server to exit.
  # 8>&- : the server must not inherit (and so keep holding) the lock of up.sh/down.sh.
  (cd "$wd" && exec setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidf" "$@") </dev/null >>"$logf" 2>&1 8>&- &
  for _ in $(seq 1 50); do [[ -s "$pidf" ]] && break; sleep 0.1; done
  [[ -s "$pidf" ]] || die "could not start $1 (no pid file $pidf); see $logf"
  cat "$pidf"
}

# Wait until check_fn succeeds; die with the log tail if the process dies or time runs out.
wait_ready() { # NAME PID LOGFILE CHECK_FN WHAT [CHECK_ARG]
  local name="$1" pid="$2" logf="$3" check="$4" what="$5" arg="${6:-}" deadline=$((SECONDS + READY_TIMEOUT)) hint=""
  while :; do
    if "$check" ${arg:+"$arg"}; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      [[ "$name" == kafka* ]] && hint=" If the log mentions meta.properties, cluster id or metadata.version (data from another Kafka version), run: infra/local/down.sh --purge; infra/local/up.sh."
      printf '%s\n' "----- last lines of $logf -----" >&2; tail -n 40 "$logf" >&2 || true; printf '%s\n' "-----" >&2
      rm -f "$(pid_file "$name")" "$RUN_DIR/$name.port"
      die "$name (pid $pid) exited during startup; see the log lines above (full log: $logf).$hint"
    fi
    if ((SECONDS >= deadline)); then
      printf '%s\n' "----- last lines of $logf -----" >&2; tail -n 40 "$logf" >&2 || true; printf '%s\n' "-----" >&2
      die "$name (pid $pid) not ready after ${READY_TIMEOUT}s (waiting for: $what). Log lines above; full log: $logf. Stop it with infra/local/down.sh $name, or raise READY_TIMEOUT."
    fi
    sleep 0.5
  done
}

# Fail when PORT answers but is not ours.
port_must_be_free() { # PORT WHAT ENVVAR
  if tcp_open "$1"; then
    die "port $1 ($2) is already in use by a process that infra/local/up.sh did not start: $(who_listens "$1"). Stop that process, or choose another port (e.g. $3=$(($1 + 100)) infra/local/up.sh). If it is a Kafka/registry you want to use instead, set KAFKA_BROKERS, SCHEMA_REGISTRY_URL and REDIS_URL for the tests and skip up.sh."
  fi
}

# kafka_node_launch NAME: start a cluster node from RUN_DIR/NAME.properties (not waiting for it)
kafka_node_launch() {
  local name="$1" props="$RUN_DIR/$1.properties"
  [[ -f "$props" ]] || die "$name: no $props (start the cluster with infra/local/up.sh --brokers N first)"
  # shellcheck disable=SC2086
  spawn "$(pid_file "$name")" "$LOG_DIR/$name.log" "$LOCAL_DIR" \
    java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$LOCAL_INFRA_DIR/kafka/log4j2.xml" -cp "$KAFKA_LIBS/*" \
    kafka.Kafka "$props"
  node_port "$name" >"$RUN_DIR/$name.port"
}
