{{/* Chart name. */}}
{{- define "log-gardener.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified app name (release-scoped). */}}
{{- define "log-gardener.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "log-gardener.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every resource. */}}
{{- define "log-gardener.labels" -}}
helm.sh/chart: {{ include "log-gardener.chart" . }}
{{ include "log-gardener.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: agent
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels (immutable on a DaemonSet: keep them minimal). */}}
{{- define "log-gardener.selectorLabels" -}}
app.kubernetes.io/name: {{ include "log-gardener.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "log-gardener.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "log-gardener.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "log-gardener.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
The chart's default collector configuration. The user's .Values.config is
merged over it (log-gardener.config). Listeners bind 0.0.0.0 because other
pods on the node reach the collector through the node-local Service or the
hostPort.
*/}}
{{- define "log-gardener.defaultConfig" -}}
receivers:
  otlp:
    protocols:
      {{- /* The collector enables a protocol by its being listed: a protocol
      switched off in ports.* is left out (and so are its ports). */}}
      {{- if .Values.ports.otlpGrpc.enabled }}
      grpc:
        endpoint: {{ printf "0.0.0.0:%d" (int .Values.ports.otlpGrpc.containerPort) }}
        max_recv_msg_size_mib: 4
      {{- end }}
      {{- if .Values.ports.otlpHttp.enabled }}
      http:
        endpoint: {{ printf "0.0.0.0:%d" (int .Values.ports.otlpHttp.containerPort) }}
        max_request_body_size: 20971520
      {{- end }}
processors:
  gardener:
    enabled: true
exporters:
  debug:
    enabled: false
  {{- if .Values.googleCloud.enabled }}
  googlecloud:
    {{- /* Without a project the exporter finds it itself (GOOGLE_CLOUD_PROJECT,
    the credentials, the metadata server); an ${env:...} reference here would
    stop the collector at start-up when the variable is not set. */}}
    {{- with .Values.googleCloud.project }}
    project: {{ . | quote }}
    {{- end }}
    interval: {{ .Values.googleCloud.interval | quote }}
    metric_prefix: {{ .Values.googleCloud.metricPrefix | quote }}
  {{- end }}
service:
  admin:
    endpoint: {{ printf "0.0.0.0:%d" (int .Values.ports.admin.containerPort) }}
  shutdown_grace_period: 10s
{{- end -}}

{{/* The effective collector configuration: defaults, then .Values.config over them. */}}
{{- define "log-gardener.config" -}}
{{- if not (or .Values.ports.otlpGrpc.enabled .Values.ports.otlpHttp.enabled) -}}
{{- fail "ports.otlpGrpc.enabled and ports.otlpHttp.enabled are both false: the collector would receive nothing; keep at least one OTLP protocol on" -}}
{{- end -}}
{{- $defaults := include "log-gardener.defaultConfig" . | fromYaml -}}
{{- $user := deepCopy (.Values.config | default dict) -}}
{{- $config := mustMergeOverwrite $defaults $user -}}
{{- $protocols := dig "receivers" "otlp" "protocols" (dict) $config -}}
{{- range $proto, $key := dict "grpc" "otlpGrpc" "http" "otlpHttp" -}}
{{- $port := index $.Values.ports $key -}}
{{- if and (not $port.enabled) (hasKey $protocols $proto) -}}
{{- fail (printf "ports.%s.enabled is false but config.receivers.otlp.protocols.%s is set, which would turn the protocol back on without its ports: remove one of the two" $key $proto) -}}
{{- end -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

