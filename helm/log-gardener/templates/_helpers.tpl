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

{{/* Labels on every resource: the chart's, with commonLabels over them
(one key each: a label written twice is a duplicate YAML key). */}}
{{- define "log-gardener.labels" -}}
{{- include "log-gardener.checkUserLabels" . -}}
{{- $chart := dict "helm.sh/chart" (include "log-gardener.chart" .) "app.kubernetes.io/version" (toString (.Values.image.tag | default .Chart.AppVersion)) "app.kubernetes.io/managed-by" .Release.Service "app.kubernetes.io/component" "agent" -}}
{{ include "log-gardener.selectorLabels" . }}
{{ merge (deepCopy (.Values.commonLabels | default dict)) $chart | toYaml }}
{{- end -}}

{{/* The pods' labels: the selector labels, the component, podLabels over it. */}}
{{- define "log-gardener.podLabels" -}}
{{- include "log-gardener.checkUserLabels" . -}}
{{ include "log-gardener.selectorLabels" . }}
{{ merge (deepCopy (.Values.podLabels | default dict)) (dict "app.kubernetes.io/component" "agent") | toYaml }}
{{- end -}}

{{/* commonLabels and podLabels may override the chart's labels but for the
selector's: the DaemonSet's selector is immutable and must match its pods. */}}
{{- define "log-gardener.checkUserLabels" -}}
{{- range $values := list "commonLabels" "podLabels" -}}
{{- range $key := list "app.kubernetes.io/name" "app.kubernetes.io/instance" -}}
{{- if hasKey (index $.Values $values | default dict) $key -}}
{{- fail (printf "%s.%s: the chart sets this label for the DaemonSet's selector (set nameOverride instead)" $values $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
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
{{- /* The ports the pod, the Service and the probes use are ports.*; a
listener moved elsewhere in config would leave them pointing at nothing. */ -}}
{{- range $proto, $key := dict "grpc" "otlpGrpc" "http" "otlpHttp" -}}
{{- $port := index $.Values.ports $key -}}
{{- $settings := get $protocols $proto -}}
{{- if and $port.enabled (kindIs "map" $settings) -}}
{{- include "log-gardener.checkEndpoint" (list (printf "config.receivers.otlp.protocols.%s.endpoint" $proto) (get $settings "endpoint") (printf "ports.%s.containerPort" $key) $port.containerPort) -}}
{{- end -}}
{{- end -}}
{{- include "log-gardener.checkEndpoint" (list "config.service.admin.endpoint" (dig "service" "admin" "endpoint" "" $config) "ports.admin.containerPort" .Values.ports.admin.containerPort) -}}
{{- /* A memory_limit_mib at or above the container's memory limit: the
kernel kills the collector before its limiter refuses anything. */ -}}
{{- $limitMib := dig "service" "memory_limit_mib" 0 $config -}}
{{- $containerLimit := dig "limits" "memory" "" (.Values.resources | default dict) -}}
{{- if and $limitMib $containerLimit -}}
{{- $containerMib := include "log-gardener.quantityMiB" $containerLimit -}}
{{- if and $containerMib (or (kindIs "float64" $limitMib) (kindIs "int64" $limitMib) (kindIs "int" $limitMib)) (ge (int $limitMib) (int $containerMib)) -}}
{{- $shown := ternary $containerLimit (int64 $containerLimit) (kindIs "string" $containerLimit) -}}
{{- fail (printf "config.service.memory_limit_mib (%d) is not below resources.limits.memory (%v, %s MiB): the container would be OOM-killed before the collector's memory limiter refuses data; leave memory_limit_mib unset (80%% of the container's limit) or lower it" (int $limitMib) $shown $containerMib) -}}
{{- end -}}
{{- end -}}
{{- /* The drain on SIGTERM must end before the kubelet's SIGKILL. */ -}}
{{- $grace := dig "service" "shutdown_grace_period" "" $config -}}
{{- $graceSeconds := include "log-gardener.durationSeconds" $grace -}}
{{- if and $graceSeconds (ge (float64 $graceSeconds) (float64 .Values.terminationGracePeriodSeconds)) -}}
{{- fail (printf "config.service.shutdown_grace_period (%v) is not below terminationGracePeriodSeconds (%v): the kubelet would kill the collector before it has drained what it accepted; raise terminationGracePeriodSeconds" $grace .Values.terminationGracePeriodSeconds) -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* durationSeconds DURATION: a duration as the collector reads it ("10s",
"1m30s", "1m 30s", "500ms") in seconds; empty for a form it does not know. */}}
{{- define "log-gardener.durationSeconds" -}}
{{- $d := toString . | lower | nospace -}}
{{- $units := dict "ms" 0.001 "s" 1.0 "sec" 1.0 "secs" 1.0 "second" 1.0 "seconds" 1.0 "m" 60.0 "min" 60.0 "mins" 60.0 "minute" 60.0 "minutes" 60.0 "h" 3600.0 "hr" 3600.0 "hrs" 3600.0 "hour" 3600.0 "hours" 3600.0 -}}
{{- $ok := regexMatch "^([0-9]+(\\.[0-9]+)?[a-z]+)+$" $d -}}
{{- $total := 0.0 -}}
{{- if $ok -}}
{{- range regexFindAll "[0-9.]+[a-z]+" $d -1 -}}
{{- $n := regexFind "^[0-9.]+" . -}}
{{- $u := trimPrefix $n . -}}
{{- if hasKey $units $u -}}
{{- $total = addf $total (mulf (float64 $n) (get $units $u)) -}}
{{- else -}}
{{- $ok = false -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $ok -}}{{ $total }}{{- end -}}
{{- end -}}

{{/*
checkEndpoint (list KEY ENDPOINT PORT_KEY PORT): fails when the endpoint's
port is not the container port, or when it listens on loopback only (the
kubelet's probes, the hostPort and the Service come in on the pod's IP).
An endpoint whose port is an ${env:...} reference is not checked.
*/}}
{{- define "log-gardener.checkEndpoint" -}}
{{- $key := index . 0 -}}
{{- $endpoint := toString (index . 1) -}}
{{- $portKey := index . 2 -}}
{{- $want := int (index . 3) -}}
{{- $got := regexFind "[0-9]+$" $endpoint -}}
{{- if and $got (ne (int $got) $want) -}}
{{- fail (printf "%s is %s but %s is %d: the container port, hostPort, Service and probes follow %s, so set that instead of the endpoint's port" $key $endpoint $portKey $want $portKey) -}}
{{- end -}}
{{- $host := trimSuffix (printf ":%s" $got) $endpoint -}}
{{- if and $got (has $host (list "127.0.0.1" "localhost" "[::1]")) -}}
{{- fail (printf "%s is %s: a loopback address is not reachable from outside the pod (the kubelet's probes, hostPorts, the Service, Prometheus); use 0.0.0.0 (or the pod IP)" $key $endpoint) -}}
{{- end -}}
{{- end -}}

{{/* quantityMiB QUANTITY: a Kubernetes memory quantity (256Mi, 1Gi, 500M,
bytes) in whole MiB; empty for a form it does not know. */}}
{{- define "log-gardener.quantityMiB" -}}
{{- if kindIs "string" . -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" . -}}
{{- $mult := get (dict "" 1.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0) (trimPrefix $num .) -}}
{{- if and $num $mult -}}
{{- divf (mulf (float64 $num) $mult) 1048576.0 | floor | int -}}
{{- end -}}
{{- else if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) -}}
{{- divf (float64 .) 1048576.0 | floor | int -}}
{{- end -}}
{{- end -}}
