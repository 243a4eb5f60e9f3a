#!/usr/bin/env bash
# The Redis-facing integration specs against a Redis Cluster (and the Sentinel spec behind
# Sentinel), as CI's "redis cluster" step runs them after `npm test` (which runs them against one
# Redis); a developer runs `npm run test:redis-cluster`.
#   1. infra/local/redis-cluster.sh up: three masters on 127.0.0.1:7101-7103 (REDIS_CLUSTER_PORTS)
#   2. infra/local/redis-sentinel.sh up: master, replica, three sentinels on 7111-7123
#   3. mocha on the specs below with TEST_REDIS_TOPOLOGY=cluster: the services under test and the
#      specs' own clients use REDIS_CLUSTER_NODES; Kafka and the registry come from test/setup.ts
#      as for `npm test`. The Sentinel specs take the sentinels from TEST_REDIS_SENTINELS (and
#      redis-sentinel-kill gives its services those alone; it kills -9 the master and starts it
#      again with infra/local/redis-sentinel.sh, which is why the set is this checkout's own).
# The Redis processes are left running (a second run reuses them); stop them with
# `bash scripts/ci/redis-topologies.sh down` (CI's teardown does).
# Exit code: mocha's, or 1 when the Redis processes could not be started.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
cd "$REPO"

if [[ "${1:-}" == down ]]; then
  bash infra/local/redis-cluster.sh down
  bash infra/local/redis-sentinel.sh down
  exit 0
fi

# The specs whose Redis use matters: scripts with several keys, MULTI, MGET across records,
# the data-loss path, and whole-pipeline runs (dedup claims, budgets, ticket look-ups, markers).
SPECS=(
  redis-adapters
  property-clock
  redis-loss
  hubspot-budget
  processor-rules
  outbound
  end-to-end
  tenant-isolation
  dead-letters
  redis-sentinel
  redis-sentinel-kill
)

cluster_env="$(bash infra/local/redis-cluster.sh up)" || exit 1
sentinel_env="$(bash infra/local/redis-sentinel.sh up)" || exit 1
while IFS= read -r line; do [[ -n $line ]] && export "${line?}"; done <<<"$cluster_env"
# The Sentinel spec's own variables: with REDIS_SENTINELS next to REDIS_CLUSTER_NODES, every
# service or tool a spec starts from this environment would refuse to start.
while IFS= read -r line; do [[ -n $line ]] && export "TEST_${line?}"; done <<<"$sentinel_env"
export TEST_REDIS_TOPOLOGY=cluster
echo "redis topologies: $REDIS_CLUSTER_NODES; sentinels $TEST_REDIS_SENTINELS ($TEST_REDIS_SENTINEL_NAME)"
files=()
for spec in "${SPECS[@]}"; do files+=("test/integration/$spec.int.spec.ts"); done
exec npx mocha "${files[@]}"
