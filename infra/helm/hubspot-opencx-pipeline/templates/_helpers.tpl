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
