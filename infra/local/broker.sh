#!/usr/bin/env bash
# Kill, stop or start one broker of the cluster started by infra/local/up.sh --brokers N:
#   infra/local/broker.sh kill I    SIGKILL broker I (node.id I, kafka-I): no controlled shutdown,
#                                   its partitions move once the controller misses its heartbeats
#   infra/local/broker.sh stop I    SIGTERM: a controlled shutdown (leadership moves first)
#   infra/local/broker.sh start I   start it again from its configuration and data; returns
#                                   when it serves (its log says it started and its port answers)
#   infra/local/broker.sh pid I     print its pid (exit 1 when it does not run)
# Only a broker that up.sh started from this checkout is touched. Tests use it to lose brokers.
set -euo pipefail
# shellcheck disable=SC2034  # read by lib.sh's log functions
LOG_TAG=broker
# shellcheck source=infra/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage="Usage: infra/local/broker.sh kill|stop|start|pid I (I: a broker of up.sh --brokers N, 1..N)"
case "${1:-}" in
  -h | --help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  kill | stop | start | pid) ;;
  *) die "$usage" ;;
esac
action="$1" index="${2:-}"
[[ "$index" =~ ^[1-9]$ ]] || die "$usage"
name="kafka-$index"
[[ -f "$RUN_DIR/$name.properties" ]] \
  || die "$name: no cluster broker $index here ($RUN_DIR/$name.properties is missing): start the cluster with infra/local/up.sh --brokers N"

case "$action" in
  pid)
    our_pid "$name" || exit 1
    echo
    ;;
  kill)
    pid="$(our_pid "$name")" || die "$name is not running"
    kill -KILL "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && die "$name: pid $pid survived SIGKILL"
    rm -f "$(pid_file "$name")"
    log "$name: killed (pid $pid, SIGKILL)"
    ;;
  stop)
    pid="$(our_pid "$name")" || die "$name is not running"
    kill -TERM "$pid"
    deadline=$((SECONDS + ${STOP_TIMEOUT:-30}))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && die "$name: pid $pid still runs ${STOP_TIMEOUT:-30}s after SIGTERM (infra/local/broker.sh kill $index ends it)"
    rm -f "$(pid_file "$name")"
    log "$name: stopped (pid $pid, SIGTERM)"
    ;;
  start)
    # up.sh and down.sh must not run meanwhile (they read the same pid files)
    take_lock
    if pid="$(our_pid "$name")"; then
      log "$name: already running (pid $pid)"
    else
      port="$(node_port "$name")"
      port_must_be_free "$port" "$name" KAFKA_PORT
      pid="$(kafka_node_launch "$name")"
      log "$name: starting on 127.0.0.1:$port (pid $pid), log ${LOG_DIR#"$REPO"/}/$name.log"
    fi
    wait_ready "$name" "$pid" "$LOG_DIR/$name.log" node_ready "TCP 127.0.0.1:$(node_port "$name") and 'Kafka Server started' in the log" "$name"
    log "$name: ready in $(_elapsed) (pid $pid)"
    ;;
esac
