{{/*
The services this chart deploys, in data-path order, then the operators' console. Each has a
values block of the same name.
*/}}
{{- define "pipeline.components" -}}
ingest processor outbound console
{{- end }}

{{/*
"true" for the services with an HTTP API of their own (ingest, console): they serve /metrics and
the probes on PORT too. Takes (dict "root" $ "component" "ingest").
*/}}
{{- define "pipeline.hasHttpApi" -}}
{{- if has .component (list "ingest" "console") }}true{{ end }}
{{- end }}

{{/* Chart name, overridable with nameOverride. */}}
{{- define "pipeline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Release-wide name: the release name, prefixed with the chart name unless it already contains it.
Kept to 45 characters so that "<fullname>-processor-metrics" still fits a 63-character name.
*/}}
{{- define "pipeline.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* One service's resource name. Takes (dict "root" $ "component" "ingest"). */}}
{{- define "pipeline.componentName" -}}
{{- printf "%s-%s" (include "pipeline.fullname" .root) .component }}
{{- end }}

{{- define "pipeline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource of the release. Takes the root context. */}}
{{- define "pipeline.commonLabels" -}}
helm.sh/chart: {{ include "pipeline.chart" . }}
app.kubernetes.io/name: {{ include "pipeline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ (.Values.image.tag | default .Chart.AppVersion) | toString | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "pipeline.name" . }}
{{- end }}

{{/* Selector labels of one service's pods. Takes (dict "root" $ "component" "ingest"). */}}
{{- define "pipeline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pipeline.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels of one service's resources. Takes (dict "root" $ "component" "ingest"). */}}
{{- define "pipeline.labels" -}}
{{ include "pipeline.commonLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "pipeline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pipeline.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pipeline.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{- define "pipeline.configMapName" -}}
{{- printf "%s-config" (include "pipeline.fullname" .) }}
{{- end }}

{{/*
The container port that serves /metrics and /healthz: ingest and the console serve them on their
HTTP port, the others on METRICS_PORT. Takes (dict "root" $ "component" "ingest").
*/}}
{{- define "pipeline.metricsPort" -}}
{{- $values := index .root.Values .component }}
{{- if include "pipeline.hasHttpApi" . }}{{ $values.port }}{{ else }}{{ $values.metricsPort }}{{ end }}
{{- end }}

{{- define "pipeline.metricsPortName" -}}
{{- if include "pipeline.hasHttpApi" . }}http{{ else }}metrics{{ end }}
{{- end }}

{{/*
PUBLIC_BASE_URL: the configured value, else https://<first ingress host> when the ingress is on
(behind TLS termination the request itself says http, and v3 signatures cover the full URL).
*/}}
{{- define "pipeline.publicBaseUrl" -}}
{{- if .Values.config.PUBLIC_BASE_URL }}
{{- .Values.config.PUBLIC_BASE_URL }}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- with (first .Values.ingress.hosts) }}{{ if .host }}{{ printf "https://%s" .host }}{{ end }}{{ end }}
{{- end }}
{{- end }}

{{/*
INGEST_PUBLIC_URL of the console (the admin API's webhook URLs and the install links point
there): the public base URL, else ingest's Service inside the cluster.
*/}}
{{- define "pipeline.ingestPublicUrl" -}}
{{- with include "pipeline.publicBaseUrl" . }}{{ . }}{{ else }}
{{- printf "http://%s:%v" (include "pipeline.componentName" (dict "root" . "component" "ingest")) .Values.ingest.service.port }}
{{- end }}
{{- end }}

{{/*
A probe: the defaults, then the service's overrides, then the HTTP check itself.
Takes (dict "root" $ "component" "ingest" "probe" "livenessProbe" "path" "/healthz").
*/}}
{{- define "pipeline.probe" -}}
{{- $values := index .root.Values .component }}
{{- $check := dict "httpGet" (dict "path" .path "port" (include "pipeline.metricsPortName" .)) }}
{{- $probe := merge $check (deepCopy (index $values .probe | default dict)) (deepCopy (index .root.Values.probeDefaults .probe | default dict)) }}
{{- toYaml $probe }}
{{- end }}

{{/*
"true" for the Kafka consumers (processor, outbound): they can scale on their consumer groups'
lag, and their replicas are capped at the partition count. Takes (dict "root" $ "component" "ingest").
*/}}
{{- define "pipeline.isConsumer" -}}
{{- if has .component (list "processor" "outbound") }}true{{ end }}
{{- end }}

{{/*
A consumer's groups, each with the one topic it reads, as a YAML list of {groupId, topic}. Kept in
step with consumerGroupsFor and topicsFor in lib/kafka/topics.ts (the services' own names, with
KAFKA_TOPIC_PREFIX in front): scripts/ci/helm-assertions.ts checks the rendered ScaledObjects
against them. Takes (dict "root" $ "component" "processor").
*/}}
{{- define "pipeline.consumerGroups" -}}
{{- $prefix := .root.Values.config.KAFKA_TOPIC_PREFIX | default "" | toString }}
{{- if eq .component "processor" }}
- groupId: {{ printf "%sprocessor" $prefix | quote }}
  topic: {{ printf "%shubspot.webhook-events" $prefix | quote }}
{{- else if eq .component "outbound" }}
- groupId: {{ printf "%soutbound" $prefix | quote }}
  topic: {{ printf "%spipeline.domain-events" $prefix | quote }}
- groupId: {{ printf "%soutbound.ai-replies" $prefix | quote }}
  topic: {{ printf "%spipeline.ai-replies" $prefix | quote }}
{{- end }}
{{- end }}

{{/*
config.KAFKA_PARTITIONS as a number, or "" when unset (the broker's default count). The services
create the raw, domain-event and AI-reply topics with it, so it is the partition count of every
topic a consumer group reads, unless the topics were created before with another count.
*/}}
{{- define "pipeline.partitions" -}}
{{- $partitions := .Values.config.KAFKA_PARTITIONS | default "" | toString }}
{{- if $partitions }}
{{- if not (regexMatch "^[1-9][0-9]*$" $partitions) }}
{{- fail (printf "config.KAFKA_PARTITIONS must be a whole number of at least 1, or empty for the broker's default; got %q" $partitions) }}
{{- end }}
{{- $partitions }}
{{- end }}
{{- end }}

{{/*
How one service autoscales: "" (a fixed replicaCount), "cpu" (a HorizontalPodAutoscaler on CPU
and memory use) or "keda" (a KEDA ScaledObject on its consumer groups' lag; KEDA then owns the
HPA). A Deployment gets one or the other, never both: two autoscalers on one Deployment fight over
its replica count. Misconfigurations stop the rendering here. Takes (dict "root" $ "component" "ingest").
*/}}
{{- define "pipeline.autoscalingMode" -}}
{{- $values := index .root.Values .component }}
{{- $autoscaling := $values.autoscaling | default dict }}
{{- $mode := get $autoscaling "mode" | default "cpu" | toString }}
{{- $keda := get $autoscaling "keda" | default dict }}
{{- if hasKey $keda "enabled" }}
{{- fail (printf "%s.autoscaling.keda.enabled is not a setting: choose the autoscaler with %s.autoscaling.mode (cpu or keda) and switch it on with %s.autoscaling.enabled" .component .component .component) }}
{{- end }}
{{- if not (has $mode (list "cpu" "keda")) }}
{{- fail (printf "%s.autoscaling.mode must be cpu (a HorizontalPodAutoscaler) or keda (a KEDA ScaledObject on consumer lag), not %q" .component $mode) }}
{{- end }}
{{- if and (eq $mode "keda") (not (include "pipeline.isConsumer" .)) }}
{{- fail (printf "%s.autoscaling.mode keda: %s is not a Kafka consumer (no consumer group lag to scale on); only processor and outbound take keda" .component .component) }}
{{- end }}
{{- if and $values.enabled $autoscaling.enabled }}
{{- $max := include "pipeline.maxReplicas" . | int }}
{{- if gt (int $autoscaling.minReplicas) $max }}
{{- fail (printf "%s.autoscaling.minReplicas (%d) is above its most replicas (%d: maxReplicas, capped at config.KAFKA_PARTITIONS for a consumer)" .component (int $autoscaling.minReplicas) $max) }}
{{- end }}
{{- if and (eq $mode "keda") (lt (int $autoscaling.minReplicas) 1) }}
{{- fail (printf "%s.autoscaling.minReplicas must be at least 1 with keda: parked tenants are committed past (their backlog is not lag) and replayed only by a running replica" .component) }}
{{- end }}
{{- $mode }}
{{- end }}
{{- end }}

{{/*
The most replicas autoscaling may run for a service: autoscaling.maxReplicas, and for a Kafka
consumer at most config.KAFKA_PARTITIONS. Kafka gives each partition of a group's topic to one
member of the group: replicas beyond the partition count get no partition and sit idle, holding
memory and a group membership (each join is a rebalance) while doing nothing. Outbound's two
groups read topics of the same count. With KAFKA_PARTITIONS unset the chart cannot know the count
and leaves maxReplicas as it is (KEDA's Kafka scaler still stops at each topic's partition count
by itself, allowIdleConsumers being false). Ingest takes HTTP requests: not capped.
Takes (dict "root" $ "component" "ingest").
*/}}
{{- define "pipeline.maxReplicas" -}}
{{- $values := index .root.Values .component }}
{{- $max := int $values.autoscaling.maxReplicas }}
{{- $partitions := include "pipeline.partitions" .root }}
{{- if and (include "pipeline.isConsumer" .) $partitions }}
{{- min $max (int $partitions) }}
{{- else }}
{{- $max }}
{{- end }}
{{- end }}

{{/*
Stops the rendering on a Redis topology the services would refuse at start (README "Redis
topologies"): Sentinel and Cluster both set, or sentinels without the master's name.
*/}}
{{- define "pipeline.checkRedisTopology" -}}
{{- $sentinels := .Values.config.REDIS_SENTINELS | default "" | toString }}
{{- $name := .Values.config.REDIS_SENTINEL_NAME | default "" | toString }}
{{- $cluster := .Values.config.REDIS_CLUSTER_NODES | default "" | toString }}
{{- if and $sentinels $cluster }}
{{- fail "config.REDIS_SENTINELS and config.REDIS_CLUSTER_NODES are both set: Redis is either behind Sentinel or a Cluster, set one" }}
{{- end }}
{{- if and $sentinels (not $name) }}
{{- fail "config.REDIS_SENTINELS is set without config.REDIS_SENTINEL_NAME: name the master the sentinels watch (sentinel monitor <name> ...)" }}
{{- end }}
{{- end }}
