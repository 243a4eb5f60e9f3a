#!/usr/bin/env bash
# Checks the deployment files with the real tools (CI runs each as a step of .ci/run; a developer
# runs `npm run check:deploy`):
#   alerts     promtool check rules infra/prometheus/alerts.yml
#              promtool test rules infra/prometheus/alerts.test.yml
#   dashboard  every PromQL query of infra/grafana/pipeline-dashboard.json, Grafana variables
#              replaced, as a recording rule (scripts/ci/dashboard-rules.ts) -> promtool check rules
#   helm       helm lint --strict infra/helm/hubspot-opencx-pipeline, alone and with each of its
#              ci/*.yaml values files, and helm template with each (helm-java from Maven Central:
#              scripts/ci/helm/); each scripts/ci/helm/must-fail/*.yaml must stop the rendering with
#              the message it names; then the scaling in the renderings (scripts/ci/helm-assertions.ts)
#
# Usage: bash scripts/ci/check-deploy.sh [alerts|dashboard|helm]...   (none: all three)
# Exit code: 0 when every named check passed, 1 when one failed (all of them still run),
#            2 when a tool could not be had.
#
# Tools, fetched once and kept under .cache/ (git-ignored):
# - promtool: $PROMTOOL, else `promtool` on PATH, else taken out of Debian's "prometheus" package
#   (apt-get download + dpkg-deb, no install: installing it would start a Prometheus server) into
#   .cache/promtool/. Needs apt's package lists: as root it runs `apt-get update` first.
# - helm: there is no helm binary on CI (Debian does not package it). helm-java runs Helm's own Go
#   code from a native library in a Maven artifact; `mvn dependency:copy-dependencies` puts its
#   class path in .cache/helm-java-<version>-<platform>/, and HelmCheck.java is started as a
#   single-file source program. Needs java (>= 11, with javac: a JDK) and mvn; as root on Debian
#   they are installed with apt-get when missing. MAVEN_REPO_LOCAL is passed to Maven.
# Rendered manifests and the generated dashboard rules are left in .local/ci/ for reading.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
cd "$REPO"
CACHE="$REPO/.cache"
OUT="$REPO/.local/ci"
mkdir -p "$CACHE" "$OUT"

ALERTS=infra/prometheus/alerts.yml
ALERT_TESTS=infra/prometheus/alerts.test.yml
DASHBOARD=infra/grafana/pipeline-dashboard.json
CHART=infra/helm/hubspot-opencx-pipeline
HELM_JAVA_VERSION="${HELM_JAVA_VERSION:-0.0.21}"

say() { printf '[check-deploy] %s\n' "$*"; }
# A missing tool is not a broken file: exit 2 says which one is the case.
no_tool() {
  say "ERROR: $*"
  exit 2
}
is_root() { [[ "$(id -u)" == 0 ]]; }

apt_updated=0
apt_update_once() {
  [[ $apt_updated == 1 ]] && return 0
  say "apt-get update ..."
  apt-get update -qq >"$OUT/apt-update.log" 2>&1 || {
    tail -n 5 "$OUT/apt-update.log"
    return 1
  }
  apt_updated=1
}

PROMTOOL_BIN=""
ensure_promtool() {
  [[ -n $PROMTOOL_BIN ]] && return 0
  local cached="$CACHE/promtool/promtool"
  if [[ -n ${PROMTOOL:-} ]]; then
    PROMTOOL_BIN="$PROMTOOL"
  elif command -v promtool >/dev/null 2>&1; then
    PROMTOOL_BIN="$(command -v promtool)"
  elif [[ -x $cached ]] && "$cached" --version >/dev/null 2>&1; then
    PROMTOOL_BIN="$cached"
  else
    if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
      no_tool "promtool not found, and no apt-get/dpkg-deb to take it from Debian's prometheus package (or set PROMTOOL=/path/to/promtool)"
    fi
    if is_root; then
      apt_update_once || no_tool "apt-get update failed (log: $OUT/apt-update.log)"
    fi
    local t0=$SECONDS tmp="$CACHE/.promtool-dl.$$"
    rm -rf "$tmp" && mkdir -p "$tmp"
    # apt downloads as the _apt user when it can write the folder; otherwise (root) it warns and
    # downloads as root, which is fine here.
    chmod 777 "$tmp" 2>/dev/null || true
    say "taking promtool from Debian's prometheus package (apt-get download, not installed) ..."
    if ! (cd "$tmp" && apt-get download -qq prometheus) >"$OUT/apt-download-prometheus.log" 2>&1; then
      tail -n 5 "$OUT/apt-download-prometheus.log"
      rm -rf "$tmp"
      local hint=""
      is_root || hint=" (not root: run apt-get update as root first, or install the prometheus package)"
      no_tool "apt-get download prometheus failed$hint"
    fi
    dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -C "$tmp" ./usr/bin/promtool ||
      no_tool "the prometheus package holds no ./usr/bin/promtool"
    mkdir -p "$CACHE/promtool"
    mv -f "$tmp/usr/bin/promtool" "$cached"
    basename "$tmp"/prometheus_*.deb >"$CACHE/promtool/FROM"
    rm -rf "$tmp"
    say "promtool ready in $((SECONDS - t0))s: $cached (from $(cat "$CACHE/promtool/FROM"))"
    PROMTOOL_BIN="$cached"
  fi
  say "promtool: $PROMTOOL_BIN ($("$PROMTOOL_BIN" --version 2>&1 | head -n 1))"
}

check_alerts() {
  ensure_promtool
  local rc=0
  "$PROMTOOL_BIN" check rules "$ALERTS" || rc=1
  "$PROMTOOL_BIN" test rules "$ALERT_TESTS" || rc=1
  return "$rc"
}

check_dashboard() {
  ensure_promtool
  command -v node >/dev/null 2>&1 || no_tool "node not found (scripts/ensure-node.sh prints a node >= 22)"
  local rules="$OUT/dashboard-queries.rules.yml"
  rm -f "$rules"
  node scripts/ci/dashboard-rules.ts "$DASHBOARD" "$rules" || return 1
  "$PROMTOOL_BIN" check rules "$rules" || {
    say "a dashboard query does not parse: the failing rule's dashboard_query label in $rules names its panel"
    return 1
  }
}

ensure_java_and_maven() {
  local missing=()
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
  [[ ${#missing[@]} == 0 ]] && return 0
  if is_root && command -v apt-get >/dev/null 2>&1; then
    apt_update_once || no_tool "apt-get update failed (log: $OUT/apt-update.log)"
    say "apt-get install ${missing[*]} ..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
      >"$OUT/apt-java.log" 2>&1 || {
      tail -n 5 "$OUT/apt-java.log"
      no_tool "apt-get install ${missing[*]} failed"
    }
  else
    no_tool "${missing[*]} missing (a JDK >= 11 and Apache Maven are needed for the helm check)"
  fi
}

HELM_CLASSPATH=""
ensure_helm_java() {
  local platform
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) platform=linux-amd64 ;;
    Linux-aarch64 | Linux-arm64) platform=linux-arm64 ;;
    Darwin-x86_64) platform=darwin-amd64 ;;
    Darwin-arm64) platform=darwin-arm64 ;;
    *) no_tool "helm-java has no native library for $(uname -s) $(uname -m)" ;;
  esac
  local dir="$CACHE/helm-java-$HELM_JAVA_VERSION-$platform"
  HELM_CLASSPATH="$dir/*"
  [[ -f $dir/.complete ]] && return 0
  ensure_java_and_maven
  local t0=$SECONDS tmp="$dir.tmp.$$" args=(-B -q)
  [[ -n ${MAVEN_REPO_LOCAL:-} ]] && args+=("-Dmaven.repo.local=$MAVEN_REPO_LOCAL")
  say "fetching helm-java $HELM_JAVA_VERSION ($platform) with Maven ..."
  rm -rf "$tmp"
  if ! mvn "${args[@]}" -f scripts/ci/helm/pom.xml "-Dhelm-java.version=$HELM_JAVA_VERSION" \
    "-Dhelm.platform=$platform" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    "-DoutputDirectory=$tmp" -DincludeScope=runtime >"$OUT/mvn-helm-java.log" 2>&1; then
    tail -n 20 "$OUT/mvn-helm-java.log"
    rm -rf "$tmp"
    no_tool "Maven could not fetch helm-java $HELM_JAVA_VERSION (full log: $OUT/mvn-helm-java.log)"
  fi
  touch "$tmp/.complete"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  say "helm-java ready in $((SECONDS - t0))s: $dir ($(du -sh "$dir" | cut -f1))"
}

check_helm() {
  ensure_helm_java
  command -v java >/dev/null 2>&1 || ensure_java_and_maven
  local values=("$CHART"/ci/*.yaml)
  [[ -e ${values[0]} ]] || {
    say "no $CHART/ci/*.yaml values files"
    return 1
  }
  command -v node >/dev/null 2>&1 || no_tool "node not found (scripts/ensure-node.sh prints a node >= 22)"
  local must_fail=() file
  for file in scripts/ci/helm/must-fail/*.yaml; do
    [[ -e $file ]] && must_fail+=(--must-fail "$file")
  done
  rm -rf "$OUT/helm"
  # Helm's Go code logs "Missing required value" lines on stderr while linting with the default
  # values (secrets.existingSecret has none): kept in a file, shown only when the check fails.
  local rc=0
  java -cp "$HELM_CLASSPATH" scripts/ci/helm/HelmCheck.java --out "$OUT/helm" "${must_fail[@]}" \
    "$CHART" "${values[@]}" 2>"$OUT/helm-check.stderr.log" || rc=$?
  if [[ $rc != 0 ]]; then
    tail -n 20 "$OUT/helm-check.stderr.log"
    [[ $rc == 2 ]] && exit 2
    return 1
  fi
  say "rendered manifests: $OUT/helm/"
  node scripts/ci/helm-assertions.ts "$OUT/helm" || return 1
}

checks=("$@")
[[ ${#checks[@]} == 0 ]] && checks=(alerts dashboard helm)
failed=()
for check in "${checks[@]}"; do
  case "$check" in
    alerts | dashboard | helm) ;;
    *)
      say "unknown check '$check' (alerts, dashboard, helm)"
      exit 2
      ;;
  esac
  t0=$SECONDS
  if "check_$check"; then
    say "$check: ok ($((SECONDS - t0))s)"
  else
    say "$check: FAILED ($((SECONDS - t0))s)"
    failed+=("$check")
  fi
done
if [[ ${#failed[@]} != 0 ]]; then
  say "FAILED: ${failed[*]}"
  exit 1
fi
