#!/usr/bin/env bash
# Start the local test infrastructure without Docker:
#   - Apache Kafka 4.x, KRaft, single node  127.0.0.1:$KAFKA_PORT (9092), controller :$KAFKA_CONTROLLER_PORT (19093)
#     or, with --brokers N (2..9): a controller of its own (node 0, :$KAFKA_CONTROLLER_PORT) and
#     N brokers (node i on 127.0.0.1:$KAFKA_PORT + 100*(i-1)); internal topics get min(3, N)
#     replicas and min.insync.replicas min(2, N). .local/env then also has KAFKA_CLUSTER_BROKERS
#     (the same list: the brokers infra/local/broker.sh can kill and start, node 1 first).
#   - Apicurio Registry 3.x                  http://127.0.0.1:$REGISTRY_PORT (8081), Confluent API at /apis/ccompat/v7
#   - Redis                                  127.0.0.1:$REDIS_PORT (6379): the one already running if any
#
# Idempotent: whatever already runs (started by an earlier up.sh) is left alone, so a second
# call is a quick no-op. A port held by some other process is an error.
#
# stdout (only): the lines of <repo>/.local/env, then LOCAL_INFRA_STARTED="<what this call
# started: kafka (or kafka-controller kafka-1 ..) apicurio redis, or empty>". Progress goes to
# stderr. A caller that wants to undo exactly what it started runs
# `infra/local/down.sh $LOCAL_INFRA_STARTED` (the same list is in <repo>/.local/run/last-up.started).
# On failure, up.sh stops what it had started itself (set KEEP_ON_FAILURE=1 to keep it for debugging).
#
# Env: KAFKA_PORT KAFKA_CONTROLLER_PORT REGISTRY_PORT REGISTRY_MANAGEMENT_PORT REDIS_PORT
#      KAFKA_VERSION (4.4.0) APICURIO_VERSION (3.0.9) KAFKA_HEAP_OPTS REGISTRY_HEAP_OPTS (-Xmx512m)
#      REGISTRY_COMPATIBILITY (BACKWARD; NONE = Apicurio's own default) READY_TIMEOUT (120 s)
#      MAVEN_REPO_LOCAL (passed to Maven as -Dmaven.repo.local) KEEP_ON_FAILURE
set -euo pipefail
# shellcheck disable=SC2034  # read by lib.sh's log functions
LOG_TAG=up
# shellcheck source=infra/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BROKERS=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --brokers)
      [[ "${2:-}" =~ ^[1-9]$ ]] || die "--brokers takes a number from 1 to 9 (got '${2:-}')"
      BROKERS="$2"; shift 2 ;;
    --brokers=*)
      BROKERS="${1#--brokers=}"
      [[ "$BROKERS" =~ ^[1-9]$ ]] || die "--brokers takes a number from 1 to 9 (got '$BROKERS')"
      shift ;;
    *) die "unknown argument '$1' (up.sh takes only --brokers N; see --help)" ;;
  esac
done

REGISTRY_COMPATIBILITY="${REGISTRY_COMPATIBILITY:-BACKWARD}"
MVN_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

mkdir -p "$RUN_DIR" "$LOG_DIR" "$CACHE_DIR"
# up.sh and down.sh never run at the same time (a second caller waits).
take_lock

STARTED=()
rollback() {
  local rc=$?
  if [[ $rc -ne 0 && ${#STARTED[@]} -gt 0 ]]; then
    if [[ -n "${KEEP_ON_FAILURE:-}" ]]; then
      warn "KEEP_ON_FAILURE is set: leaving ${STARTED[*]} running; stop with infra/local/down.sh ${STARTED[*]}"
    else
      warn "up.sh failed: stopping what it started (${STARTED[*]}) so nothing half-started is left"
      LOCAL_INFRA_LOCK_HELD=1 bash "$LOCAL_INFRA_DIR/down.sh" "${STARTED[@]}" >&2 || true
    fi
  fi
  exit $rc
}
trap rollback EXIT

need_java() {
  command -v java >/dev/null 2>&1 || die "java not found. Install a JDK/JRE 17+ (Debian: apt-get install -y openjdk-17-jre-headless) and re-run."
  local m; m="$(java_major)"
  [[ "$m" =~ ^[0-9]+$ && "$m" -ge "$1" ]] || die "$2 needs Java $1+, but 'java -version' reports ${m:-?}. Put a newer java first on PATH and re-run."
}
need_mvn() {
  command -v mvn >/dev/null 2>&1 || die "mvn (Apache Maven) not found; it is needed once to fetch $1. Install it (Debian: apt-get install -y maven) and re-run."
}

# ------------------------------------------------------------------ Kafka
kafka_ready() { tcp_open "$KAFKA_PORT" && grep -q "Kafka Server started" "$LOG_DIR/kafka.log" 2>/dev/null; }

kafka_fetch() {
  if [[ -f "$KAFKA_LIBS/.complete" ]]; then
    log "kafka: class path cached in ${KAFKA_LIBS#"$REPO"/} ($(($(ls "$KAFKA_LIBS" | wc -l))) jars)"
    return 0
  fi
  need_mvn "the Kafka $KAFKA_VERSION class path"
  log "kafka: fetching the class path of kafka_2.13 $KAFKA_VERSION with Maven into ${KAFKA_LIBS#"$REPO"/} (first run only, ~45 MB) ..."
  local tmp="$KAFKA_LIBS.tmp.$$" mlog="$LOG_DIR/mvn-kafka.log"
  rm -rf "$tmp"
  # shellcheck disable=SC2046
  if ! mvn $(mvn_args) -f "$LOCAL_INFRA_DIR/kafka/pom.xml" "-Dkafka.version=$KAFKA_VERSION" \
      "$MVN_PLUGIN:copy-dependencies" "-DoutputDirectory=$tmp" -DincludeScope=runtime >"$mlog" 2>&1; then
    tail -n 30 "$mlog" >&2 || true
    rm -rf "$tmp"
    die "Maven could not fetch Kafka $KAFKA_VERSION (log above, full: $mlog). Check that Maven Central is reachable (network, ~/.m2/settings.xml mirrors) and re-run; or pick another version with KAFKA_VERSION=4.x.y."
  fi
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "Maven finished but $tmp/kafka_2.13-$KAFKA_VERSION.jar is missing; see $mlog"
  ls "$tmp"/log4j-slf4j*-impl-*.jar >/dev/null 2>&1 || die "no log4j SLF4J binding in $tmp; check infra/local/kafka/pom.xml for KAFKA_VERSION=$KAFKA_VERSION"
  ls "$tmp" >"$tmp/.complete"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  log "kafka: class path ready ($(($(ls "$KAFKA_LIBS" | wc -l))) jars, $(du -sh "$KAFKA_LIBS" | cut -f1))"
}

kafka_config() {
  mkdir -p "$KAFKA_DATA"
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
    -e "s|@LOG_DIRS@|$KAFKA_DATA|g" "$LOCAL_INFRA_DIR/kafka/server.properties.template" >"$RUN_DIR/kafka-server.properties"
  if [[ -f "$KAFKA_DATA/meta.properties" ]]; then
    log "kafka: storage already formatted ($(grep '^cluster.id=' "$KAFKA_DATA/meta.properties" || echo 'cluster.id=?')) in ${KAFKA_DATA#"$REPO"/}"
    return 0
  fi
  local jopts=(-Xmx256m -cp "$KAFKA_LIBS/*" "-Dlog4j2.configurationFile=$LOCAL_INFRA_DIR/kafka/log4j2.xml")
  local flog="$LOG_DIR/kafka-format.log" cid
  # random-uuid prints the id as its last stdout line (log4j also logs to stdout)
  cid="$(java "${jopts[@]}" kafka.tools.StorageTool random-uuid 2>>"$flog" | tail -n 1 | tr -d '\r')"
  [[ "$cid" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "kafka.tools.StorageTool random-uuid gave '$cid' instead of a cluster id; see $flog"
  log "kafka: formatting storage in ${KAFKA_DATA#"$REPO"/} (cluster id $cid) ..."
  if ! java "${jopts[@]}" kafka.tools.StorageTool format -t "$cid" -c "$RUN_DIR/kafka-server.properties" >>"$flog" 2>&1; then
    tail -n 20 "$flog" >&2 || true
    die "kafka.tools.StorageTool format failed (log above, full: $flog). If ${KAFKA_DATA#"$REPO"/} holds something half-written, run infra/local/down.sh --purge and re-run."
  fi
}

kafka_launch() {
  port_must_be_free "$KAFKA_PORT" "Kafka" KAFKA_PORT
  port_must_be_free "$KAFKA_CONTROLLER_PORT" "Kafka controller" KAFKA_CONTROLLER_PORT
  log "kafka: starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (controller :$KAFKA_CONTROLLER_PORT), log ${LOG_DIR#"$REPO"/}/kafka.log"
  # shellcheck disable=SC2086
  KAFKA_PID="$(spawn "$(pid_file kafka)" "$LOG_DIR/kafka.log" "$LOCAL_DIR" \
    java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$LOCAL_INFRA_DIR/kafka/log4j2.xml" -cp "$KAFKA_LIBS/*" \
    kafka.Kafka "$RUN_DIR/kafka-server.properties")"
  echo "$KAFKA_PORT" >"$RUN_DIR/kafka.port"
  STARTED+=(kafka)
}

# ------------------------------------------------------------------ Kafka cluster (--brokers N)
broker_port() { echo $((KAFKA_PORT + 100 * ($1 - 1))); }
cluster_broker_list() {
  local i list=""
  for ((i = 1; i <= BROKERS; i++)); do list+="${list:+,}127.0.0.1:$(broker_port "$i")"; done
  printf '%s' "$list"
}

# cluster_write_config NAME: the node's properties file, from its template
cluster_write_config() {
  local name="$1" rf=$((BROKERS < 3 ? BROKERS : 3)) isr=$((BROKERS < 2 ? BROKERS : 2)) dir
  if [[ "$name" == kafka-controller ]]; then
    dir="$KAFKA_CLUSTER_DATA/controller"
    mkdir -p "$dir"
    sed -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" -e "s|@LOG_DIRS@|$dir|g" \
      "$LOCAL_INFRA_DIR/kafka/cluster-controller.properties.template" >"$RUN_DIR/$name.properties"
  else
    local id="${name#kafka-}"
    dir="$KAFKA_CLUSTER_DATA/$id"
    mkdir -p "$dir"
    sed -e "s|@NODE_ID@|$id|g" -e "s|@KAFKA_PORT@|$(broker_port "$id")|g" \
      -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" -e "s|@LOG_DIRS@|$dir|g" \
      -e "s|@REPLICATION_FACTOR@|$rf|g" -e "s|@MIN_ISR@|$isr|g" \
      "$LOCAL_INFRA_DIR/kafka/cluster-broker.properties.template" >"$RUN_DIR/$name.properties"
  fi
}

# cluster_format NAME: format the node's log dir with the cluster's id (once)
cluster_format() {
  local name="$1" dir jopts=(-Xmx256m -cp "$KAFKA_LIBS/*" "-Dlog4j2.configurationFile=$LOCAL_INFRA_DIR/kafka/log4j2.xml")
  local flog="$LOG_DIR/kafka-format.log" cid
  dir="$(sed -n 's/^log.dirs=//p' "$RUN_DIR/$name.properties")"
  [[ -f "$dir/meta.properties" ]] && return 0
  if [[ ! -s "$KAFKA_CLUSTER_DATA/cluster.id" ]]; then
    cid="$(java "${jopts[@]}" kafka.tools.StorageTool random-uuid 2>>"$flog" | tail -n 1 | tr -d '\r')"
    [[ "$cid" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "kafka.tools.StorageTool random-uuid gave '$cid' instead of a cluster id; see $flog"
    echo "$cid" >"$KAFKA_CLUSTER_DATA/cluster.id"
  fi
  cid="$(cat "$KAFKA_CLUSTER_DATA/cluster.id")"
  log "$name: formatting storage in ${dir#"$REPO"/} (cluster id $cid) ..."
  if ! java "${jopts[@]}" kafka.tools.StorageTool format -t "$cid" -c "$RUN_DIR/$name.properties" >>"$flog" 2>&1; then
    tail -n 20 "$flog" >&2 || true
    die "kafka.tools.StorageTool format failed for $name (log above, full: $flog). Run infra/local/down.sh --purge and re-run."
  fi
}

# kafka_cluster_up: start the controller and brokers 1..N that do not run; wait for all of them
kafka_cluster_up() {
  local names=(kafka-controller) name pid port i f waiting=()
  for ((i = 1; i <= BROKERS; i++)); do names+=("kafka-$i"); done
  # a larger cluster left behind by an earlier up.sh: its extra brokers would join this one
  for f in "$RUN_DIR"/kafka-[0-9]*.properties; do
    [[ -f "$f" ]] || continue
    name="${f##*/}"; name="${name%.properties}"; i="${name#kafka-}"
    ((i > BROKERS)) || continue
    if our_pid "$name" >/dev/null; then die "$name runs (a cluster of more than $BROKERS brokers): run infra/local/down.sh first"; fi
    rm -f "$f"
  done
  mkdir -p "$KAFKA_CLUSTER_DATA"
  for name in "${names[@]}"; do
    if [[ "$name" == kafka-controller ]]; then port="$KAFKA_CONTROLLER_PORT"; else port="$(broker_port "${name#kafka-}")"; fi
    if pid="$(our_pid "$name")"; then
      [[ "$(node_port "$name")" == "$port" ]] || die "$name started by an earlier up.sh runs on port $(node_port "$name"), not $port. Run infra/local/down.sh first, or use the ports it was started with."
      log "$name: already running (pid $pid, 127.0.0.1:$port)"
      waiting+=("$name:$pid")
      continue
    fi
    port_must_be_free "$port" "$name" "$([[ $name == kafka-controller ]] && echo KAFKA_CONTROLLER_PORT || echo KAFKA_PORT)"
    cluster_write_config "$name"
    cluster_format "$name"
    log "$name: starting on 127.0.0.1:$port, log ${LOG_DIR#"$REPO"/}/$name.log"
    pid="$(kafka_node_launch "$name")"
    STARTED+=("$name")
    waiting+=("$name:$pid")
  done
  for name in "${waiting[@]}"; do
    pid="${name#*:}"; name="${name%%:*}"
    node_ready "$name" && continue
    wait_ready "$name" "$pid" "$LOG_DIR/$name.log" node_ready "TCP 127.0.0.1:$(node_port "$name") and 'Kafka Server started' in the log" "$name"
    log "$name: ready (pid $pid)"
  done
}

# ------------------------------------------------------------------ Apicurio
APICURIO_URL="http://127.0.0.1:$REGISTRY_PORT"
apicurio_ready() { [[ "$(http_status "$APICURIO_URL$CCOMPAT_PATH/subjects")" == 200 ]]; }

apicurio_need_java() {
  case "$APICURIO_VERSION" in
    3.0.*) need_java 17 "Apicurio Registry $APICURIO_VERSION" ;;
    *) need_java 21 "Apicurio Registry $APICURIO_VERSION (3.1+ is compiled for Java 21; 3.0.9 runs on 17: unset APICURIO_VERSION)" ;;
  esac
}

apicurio_fetch() {
  if [[ -f "$APICURIO_HOME/.complete" ]]; then
    log "apicurio: distribution cached in ${APICURIO_HOME#"$REPO"/}"
    return 0
  fi
  need_mvn "Apicurio Registry $APICURIO_VERSION"
  log "apicurio: fetching io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all with Maven (first run only, ~110-160 MB) ..."
  local dl="$CACHE_DIR/.apicurio-dl.$$" tmp="$APICURIO_HOME.tmp.$$" mlog="$LOG_DIR/mvn-apicurio.log" tgz jar
  rm -rf "$dl" "$tmp"
  # shellcheck disable=SC2046
  if ! mvn $(mvn_args) -f "$LOCAL_INFRA_DIR/apicurio/pom.xml" "-Dapicurio.version=$APICURIO_VERSION" \
      "$MVN_PLUGIN:copy-dependencies" "-DoutputDirectory=$dl" >"$mlog" 2>&1; then
    tail -n 30 "$mlog" >&2 || true
    rm -rf "$dl"
    die "Maven could not fetch Apicurio Registry $APICURIO_VERSION (log above, full: $mlog). Check that Maven Central is reachable and re-run; a 3.x whose parent POM is missing needs a stub in infra/local/apicurio/stub-repo (see the one for 3.0.9)."
  fi
  tgz="$(ls "$dl"/apicurio-registry-app-*.tar.gz 2>/dev/null | head -1)"
  [[ -n "$tgz" ]] || die "Maven finished but no apicurio-registry-app tar.gz is in $dl; see $mlog"
  log "apicurio: unpacking $(basename "$tgz") ..."
  mkdir -p "$tmp"
  tar -xzf "$tgz" -C "$tmp" || die "could not unpack $tgz (disk full?); delete $tmp and re-run"
  rm -rf "$dl"
  # 3.3.x: quarkus-run.jar at the top; 3.1.5-3.2.x: quarkus-app/quarkus-run.jar; <= 3.1.4 (incl. 3.0.9): *-runner.jar
  for jar in quarkus-run.jar quarkus-app/quarkus-run.jar; do [[ -f "$tmp/$jar" ]] && break; jar=""; done
  if [[ -z "$jar" ]]; then jar="$(cd "$tmp" && ls ./*-runner.jar 2>/dev/null | head -1)"; jar="${jar#./}"; fi
  [[ -n "$jar" && -f "$tmp/$jar" ]] || die "no quarkus-run.jar or *-runner.jar found in $tgz; this Apicurio layout is unknown to up.sh"
  echo "$jar" >"$tmp/.complete"
  rm -rf "$APICURIO_HOME"
  mv "$tmp" "$APICURIO_HOME"
  log "apicurio: unpacked into ${APICURIO_HOME#"$REPO"/} ($(du -sh "$APICURIO_HOME" | cut -f1)), launcher $jar"
}

apicurio_launch() {
  port_must_be_free "$REGISTRY_PORT" "Apicurio Registry" REGISTRY_PORT
  local jar; jar="$(head -1 "$APICURIO_HOME/.complete")"
  mkdir -p "$LOCAL_DIR/apicurio"
  log "apicurio: starting Apicurio Registry $APICURIO_VERSION on $APICURIO_URL (global compatibility $REGISTRY_COMPATIBILITY), log ${LOG_DIR#"$REPO"/}/apicurio.log"
  # Notes on the flags:
  # - storage is Apicurio's default in-memory H2: every start is empty (right for tests).
  # - compatibility: see apicurio_set_compatibility below.
  # - deletes are off by default in Apicurio 3.x; the Confluent API allows them, so enable.
  # - the management interface (3.2+) is moved off 9000 and bound to loopback.
  # - -Dlocal.infra.repo only marks the process as ours for down.sh/status.sh.
  # shellcheck disable=SC2086
  APICURIO_PID="$(spawn "$(pid_file apicurio)" "$LOG_DIR/apicurio.log" "$LOCAL_DIR/apicurio" \
    java $REGISTRY_HEAP_OPTS -XX:+ExitOnOutOfMemoryError "-Dlocal.infra.repo=$REPO" \
    -Dquarkus.http.host=127.0.0.1 "-Dquarkus.http.port=$REGISTRY_PORT" \
    -Dquarkus.management.host=127.0.0.1 "-Dquarkus.management.port=$REGISTRY_MANAGEMENT_PORT" \
    -Dapicurio.rest.deletion.artifact.enabled=true -Dapicurio.rest.deletion.artifact-version.enabled=true \
    -Dapicurio.rest.deletion.group.enabled=true \
    -jar "$APICURIO_HOME/$jar")"
  echo "$REGISTRY_PORT" >"$RUN_DIR/apicurio.port"
  STARTED+=(apicurio)
}

# Confluent's registry defaults to BACKWARD compatibility; Apicurio starts with no global rule
# (anything is accepted, GET /config says NONE). Quirks of Apicurio 3.0.9's ccompat API, checked:
#  - a default rule from configuration (-Dapicurio.rules.global.compatibility=BACKWARD) is
#    enforced, but GET /config still says NONE and no PUT can turn it off;
#  - a global rule stored through PUT /config is reported truthfully and PUT /config NONE
#    removes it, so that is what we do (after each start: storage is in memory);
#  - PUT /config/<subject> NONE does NOT override a global BACKWARD (Apicurio deletes the
#    subject's rule and the global one applies); other levels (FORWARD, FULL...) do override.
apicurio_set_compatibility() {
  [[ "$REGISTRY_COMPATIBILITY" == NONE ]] && return 0
  if ! command -v curl >/dev/null 2>&1; then
    warn "apicurio: curl not found, so the global compatibility stays NONE (Apicurio's default), not $REGISTRY_COMPATIBILITY. Install curl to fix."
    return 0
  fi
  local out
  out="$(curl -s -m 10 -X PUT -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
    --data "{\"compatibility\":\"$REGISTRY_COMPATIBILITY\"}" "$APICURIO_URL$CCOMPAT_PATH/config" || true)"
  [[ "$out" == *"\"$REGISTRY_COMPATIBILITY\""* ]] \
    || die "apicurio: PUT $APICURIO_URL$CCOMPAT_PATH/config {compatibility: $REGISTRY_COMPATIBILITY} answered '$out'; see $LOG_DIR/apicurio.log (or run with REGISTRY_COMPATIBILITY=NONE)."
  log "apicurio: global compatibility set to $REGISTRY_COMPATIBILITY (PUT /config)"
}

# ------------------------------------------------------------------ Redis
redis_up() {
  local pid
  if redis_ping "$REDIS_PORT"; then
    if pid="$(our_pid redis)"; then
      log "redis: already running (started by up.sh, pid $pid) on 127.0.0.1:$REDIS_PORT"
    else
      log "redis: using the Redis already answering on 127.0.0.1:$REDIS_PORT (not started by up.sh; down.sh leaves it alone)"
    fi
    return 0
  fi
  port_must_be_free "$REDIS_PORT" "Redis" REDIS_PORT
  if ! command -v redis-server >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
      log "redis: redis-server missing; installing the Debian package redis-server ..."
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; } >"$LOG_DIR/apt-redis.log" 2>&1 \
        || { tail -n 20 "$LOG_DIR/apt-redis.log" >&2; die "apt-get install redis-server failed (see above). Install Redis yourself, or set REDIS_URL for the tests."; }
      # the package may have started its own service
      if redis_ping "$REDIS_PORT"; then
        log "redis: the freshly installed package's service answers on :$REDIS_PORT; using it (not ours)"
        return 0
      fi
    else
      die "redis-server not found and cannot be installed here (needs root and apt-get). Install Redis (e.g. apt-get install -y redis-server) or run one on 127.0.0.1:$REDIS_PORT, then re-run."
    fi
  fi
  mkdir -p "$REDIS_DIR"
  log "redis: starting redis-server on 127.0.0.1:$REDIS_PORT (no persistence), log ${LOG_DIR#"$REPO"/}/redis.log"
  redis-server --daemonize yes --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$REDIS_DIR" --pidfile "$(pid_file redis)" --logfile "$LOG_DIR/redis.log" </dev/null >&2 8>&- \
    || die "redis-server failed to start; see $LOG_DIR/redis.log"
  echo "$REDIS_PORT" >"$RUN_DIR/redis.port"
  STARTED+=(redis)
  for _ in $(seq 1 100); do redis_ping "$REDIS_PORT" && break; sleep 0.2; done
  redis_ping "$REDIS_PORT" || { tail -n 20 "$LOG_DIR/redis.log" >&2 || true; die "redis-server did not answer PING within 20 s; see $LOG_DIR/redis.log"; }
  log "redis: ready (pid $(cat "$(pid_file redis)" 2>/dev/null || echo '?'))"
}

# ------------------------------------------------------------------ main
if ((BROKERS > 1)); then
  log "repo ${REPO}; Kafka $KAFKA_VERSION (controller + $BROKERS brokers), Apicurio $APICURIO_VERSION; ports brokers=$(cluster_broker_list) controller=$KAFKA_CONTROLLER_PORT registry=$REGISTRY_PORT redis=$REDIS_PORT"
else
  log "repo ${REPO}; Kafka $KAFKA_VERSION, Apicurio $APICURIO_VERSION; ports kafka=$KAFKA_PORT controller=$KAFKA_CONTROLLER_PORT registry=$REGISTRY_PORT redis=$REDIS_PORT"
fi

# already running (ours)? -> nothing to do for it. With --brokers N, the single broker is not
# started (kafka_state=cluster): kafka_cluster_up handles the cluster's nodes.
kafka_state=start apicurio_state=start
((BROKERS > 1)) && kafka_state=cluster
if [[ $kafka_state == cluster ]]; then :; elif KAFKA_PID="$(our_pid kafka)"; then
  rp="$(recorded_port kafka)"
  [[ -z "$rp" || "$rp" == "$KAFKA_PORT" ]] || die "Kafka started by an earlier up.sh runs on port $rp, not $KAFKA_PORT. Run infra/local/down.sh kafka first, or use KAFKA_PORT=$rp."
  if kafka_ready; then kafka_state=running; else kafka_state="wait"; fi
  log "kafka: already running (pid $KAFKA_PID, 127.0.0.1:$KAFKA_PORT)$([[ $kafka_state == wait ]] && echo '; still starting, waiting for it')"
fi
if APICURIO_PID="$(our_pid apicurio)"; then
  rp="$(recorded_port apicurio)"
  [[ -z "$rp" || "$rp" == "$REGISTRY_PORT" ]] || die "Apicurio started by an earlier up.sh runs on port $rp, not $REGISTRY_PORT. Run infra/local/down.sh apicurio first, or use REGISTRY_PORT=$rp."
  if apicurio_ready; then apicurio_state=running; else apicurio_state="wait"; fi
  log "apicurio: already running (pid $APICURIO_PID, $APICURIO_URL)$([[ $apicurio_state == wait ]] && echo '; still starting, waiting for it')"
fi

if [[ $kafka_state == start ]]; then
  need_java 17 "Kafka $KAFKA_VERSION"
  port_must_be_free "$KAFKA_PORT" "Kafka" KAFKA_PORT
  port_must_be_free "$KAFKA_CONTROLLER_PORT" "Kafka controller" KAFKA_CONTROLLER_PORT
fi
if [[ $apicurio_state == start ]]; then
  apicurio_need_java
  port_must_be_free "$REGISTRY_PORT" "Apicurio Registry" REGISTRY_PORT
fi

# fetch (cold path only), then start both JVMs before waiting for either
if [[ $kafka_state == cluster ]]; then need_java 17 "Kafka $KAFKA_VERSION"; kafka_fetch; fi
if [[ $kafka_state == start ]]; then kafka_fetch; kafka_config; fi
if [[ $apicurio_state == start ]]; then apicurio_fetch; fi
if [[ $kafka_state == start ]]; then kafka_launch; fi
if [[ $apicurio_state == start ]]; then apicurio_launch; fi

redis_up

if [[ $kafka_state == cluster ]]; then
  kafka_cluster_up
elif [[ $kafka_state != running ]]; then
  log "kafka: waiting for 127.0.0.1:$KAFKA_PORT and 'Kafka Server started' (up to ${READY_TIMEOUT}s) ..."
  wait_ready kafka "$KAFKA_PID" "$LOG_DIR/kafka.log" kafka_ready "TCP 127.0.0.1:$KAFKA_PORT and 'Kafka Server started' in the log"
  log "kafka: ready (pid $KAFKA_PID)"
fi
if [[ $apicurio_state != running ]]; then
  log "apicurio: waiting for GET $APICURIO_URL$CCOMPAT_PATH/subjects to answer 200 (up to ${READY_TIMEOUT}s) ..."
  wait_ready apicurio "$APICURIO_PID" "$LOG_DIR/apicurio.log" apicurio_ready "HTTP 200 from $APICURIO_URL$CCOMPAT_PATH/subjects"
  log "apicurio: ready (pid $APICURIO_PID)"
  if [[ $apicurio_state == start ]]; then apicurio_set_compatibility; fi
fi

if [[ $kafka_state == cluster ]]; then
  env_lines="KAFKA_BROKERS=$(cluster_broker_list)
KAFKA_CLUSTER_BROKERS=$(cluster_broker_list)
SCHEMA_REGISTRY_URL=$APICURIO_URL$CCOMPAT_PATH
REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
else
  env_lines="KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
SCHEMA_REGISTRY_URL=$APICURIO_URL$CCOMPAT_PATH
REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
fi
printf '%s\n' "$env_lines" >"$ENV_FILE.tmp.$$"
mv -f "$ENV_FILE.tmp.$$" "$ENV_FILE"
printf '%s\n' "${STARTED[*]:-}" >"$RUN_DIR/last-up.started"

if [[ ${#STARTED[@]} -gt 0 ]]; then
  log "all ready in $(_elapsed); started now: ${STARTED[*]}; env written to ${ENV_FILE#"$REPO"/} (stop with infra/local/down.sh)"
else
  log "all ready in $(_elapsed); everything was already running (nothing started); env in ${ENV_FILE#"$REPO"/}"
fi
printf '%s\n' "$env_lines"
printf 'LOCAL_INFRA_STARTED="%s"\n' "${STARTED[*]:-}"
