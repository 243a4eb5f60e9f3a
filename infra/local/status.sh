#!/usr/bin/env bash
# Show what of the local test infrastructure runs (see infra/local/up.sh).
# Exit code: 0 when Kafka (the single broker, or every node of the cluster of up.sh --brokers N),
# the registry and Redis all answer; 1 otherwise.
set -euo pipefail
# shellcheck disable=SC2034  # read by lib.sh's log functions
LOG_TAG=status
# shellcheck source=infra/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
  -h | --help) sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

ok=0
line() { printf '%-9s %s\n' "$1" "$2"; }
uptime_of() { # PID -> e.g. 00:03:12
  ps -o etime= -p "$1" 2>/dev/null | tr -d ' ' || true
}

# Kafka: the cluster's nodes when up.sh --brokers N wrote their configuration, else the single broker
mapfile -t cluster < <(cluster_nodes)
if [[ ${#cluster[@]} -gt 0 ]]; then
  for name in "${cluster[@]}"; do
    port="$(node_port "$name")"
    if pid="$(our_pid "$name")"; then
      if node_ready "$name"; then st=ready; else st="starting (not ready yet)"; ok=1; fi
      line "$name" "$st: pid $pid, up $(uptime_of "$pid"), 127.0.0.1:$port, log .local/logs/$name.log"
    else
      line "$name" "stopped (127.0.0.1:$port; infra/local/broker.sh start ${name#kafka-} or up.sh --brokers N starts it)"; ok=1
    fi
  done
else
  kp="$(recorded_port kafka)"; kp="${kp:-$KAFKA_PORT}"
  if pid="$(our_pid kafka)"; then
    if tcp_open "$kp" && grep -q "Kafka Server started" "$LOG_DIR/kafka.log" 2>/dev/null; then st=ready; else st="starting (not ready yet)"; ok=1; fi
    v="$(tr '\0' '\n' <"/proc/$pid/cmdline" | grep -m1 -o 'kafka-libs-[0-9][0-9.]*[0-9]' || true)"
    line kafka "$st: pid $pid, up $(uptime_of "$pid"), 127.0.0.1:$kp (controller :$KAFKA_CONTROLLER_PORT), Kafka ${v#kafka-libs-}, log .local/logs/kafka.log, data .local/kafka-data"
  elif tcp_open "$KAFKA_PORT"; then
    line kafka "port $KAFKA_PORT answers, but not a Kafka started by up.sh ($(who_listens "$KAFKA_PORT"))"
  else
    line kafka "stopped"; ok=1
  fi
fi

# Apicurio
ap="$(recorded_port apicurio)"; ap="${ap:-$REGISTRY_PORT}"
if pid="$(our_pid apicurio)"; then
  code="$(http_status "http://127.0.0.1:$ap$CCOMPAT_PATH/subjects")"
  if [[ "$code" == 200 ]]; then st=ready; else st="starting (GET .../subjects -> $code)"; ok=1; fi
  jar="$(tr '\0' '\n' <"/proc/$pid/cmdline" | grep -m1 -o 'apicurio-[0-9][^/]*' || true)"
  line apicurio "$st: pid $pid, up $(uptime_of "$pid"), http://127.0.0.1:$ap$CCOMPAT_PATH (${jar:-apicurio-$APICURIO_VERSION}), log .local/logs/apicurio.log"
elif [[ "$(http_status "http://127.0.0.1:$REGISTRY_PORT$CCOMPAT_PATH/subjects")" == 200 ]]; then
  line apicurio "a registry answers on port $REGISTRY_PORT, but not one started by up.sh ($(who_listens "$REGISTRY_PORT"))"
elif tcp_open "$REGISTRY_PORT"; then
  line apicurio "port $REGISTRY_PORT is held by something that is not a registry ($(who_listens "$REGISTRY_PORT"))"; ok=1
else
  line apicurio "stopped"; ok=1
fi

# Redis
rp="$(recorded_port redis)"; rp="${rp:-$REDIS_PORT}"
if pid="$(our_pid redis)"; then
  if redis_ping "$rp"; then st=ready; else st="not answering PING"; ok=1; fi
  line redis "$st: pid $pid (started by up.sh), 127.0.0.1:$rp, log .local/logs/redis.log"
elif redis_ping "$REDIS_PORT"; then
  line redis "ready: 127.0.0.1:$REDIS_PORT, pre-existing (not started by up.sh; down.sh leaves it alone)"
else
  line redis "stopped"; ok=1
fi

if [[ -f "$ENV_FILE" ]]; then
  echo "--- ${ENV_FILE#"$REPO"/}:"
  cat "$ENV_FILE"
else
  echo "--- no ${ENV_FILE#"$REPO"/} (run infra/local/up.sh)"
fi
exit $ok
