{{/*
Names, labels and the shared pieces of every workload.
*/}}

{{- define "todo-app.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "todo-app.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "todo-app.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "todo-app.selectorLabels" -}}
app.kubernetes.io/name: {{ include "todo-app.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "todo-app.labels" -}}
helm.sh/chart: {{ include "todo-app.chart" . }}
{{ include "todo-app.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: todo-app
{{- end }}

{{- define "todo-app.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "todo-app.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "todo-app.secretName" -}}
{{- if .Values.secrets.create }}
{{- printf "%s-secrets" (include "todo-app.fullname" .) }}
{{- else }}
{{- required "secrets.existingSecret is required when secrets.create is false" .Values.secrets.existingSecret }}
{{- end }}
{{- end }}

{{- define "todo-app.daprConfigName" -}}
{{- include "todo-app.fullname" . }}
{{- end }}

{{- define "todo-app.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Every Kafka topic the release needs, with its retention in ms: the application topics
and the dead-letter topics of the enabled consumers (see "todo-app.pubsubApps").
*/}}
{{- define "todo-app.topicRetention" -}}
{{- range $topic, $ms := .Values.topics.retentionMs }}
{{ $topic }}: {{ $ms | int64 }}
{{- end }}
{{- $apps := include "todo-app.pubsubApps" . | fromYaml }}
{{- $dlq := dict }}
{{- range $app, $t := $apps }}
{{- if ne $app "todo-relay" }}
{{- range $t.publish }}{{ $_ := set $dlq . true }}{{ end }}
{{- end }}
{{- end }}
{{- range $topic, $_ := $dlq }}
{{ $topic }}: {{ $.Values.topics.deadLetterRetentionMs | int64 }}
{{- end }}
{{- end }}

{{/*
Non-secret environment shared by every process (the ConfigMap's data). The migration
Job renders the same map inline because hooks run before the ConfigMap exists.
*/}}
{{- define "todo-app.configData" -}}
{{- $c := .Values.config -}}
DEBUG: {{ ternary "1" "0" $c.debug | quote }}
ALLOWED_HOSTS: {{ join "," $c.allowedHosts | quote }}
CSRF_TRUSTED_ORIGINS: {{ join "," $c.csrfTrustedOrigins | quote }}
LOG_FORMAT: {{ $c.logFormat | quote }}
LOG_LEVEL: {{ $c.logLevel | quote }}
{{- if and $c.redisUrl (not .Values.secrets.redisUrlInSecret) }}
REDIS_URL: {{ $c.redisUrl | quote }}
{{- end }}
{{- with $c.jwt.jwksUrl }}
JWT_JWKS_URL: {{ . | quote }}
{{- end }}
{{- with $c.jwt.issuer }}
JWT_ISSUER: {{ . | quote }}
{{- end }}
{{- with $c.jwt.audience }}
JWT_AUDIENCE: {{ . | quote }}
{{- end }}
JWT_ALGORITHMS: {{ join "," $c.jwt.algorithms | quote }}
MCP_ALLOWED_HOSTS: {{ join "," $c.mcp.allowedHosts | quote }}
MCP_ALLOWED_ORIGINS: {{ join "," $c.mcp.allowedOrigins | quote }}
METRICS_PORT: {{ $c.metricsPort | quote }}
FORWARDED_ALLOW_IPS: {{ $c.forwardedAllowIps | quote }}
RUN_WORKERS_IN_PROCESS: "0"
{{- range $name, $value := $c.extraEnv }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
Broker selection for the long-running processes (not for the migration Job, which
runs without a sidecar and lets the settings pick the embedded broker).
*/}}
{{- define "todo-app.brokerData" -}}
{{- if .Values.dapr.enabled }}
EVENTS_BROKER: "dapr"
DAPR_PUBSUB_NAME: {{ .Values.dapr.pubsub.name | quote }}
{{- else }}
EVENTS_BROKER: "embedded"
{{- end }}
{{- end }}

{{/*
Secret-backed environment. JWT_SECRET is optional: a JWKS setup does not need it.
*/}}
{{- define "todo-app.secretEnv" -}}
{{- $secret := include "todo-app.secretName" . -}}
{{- $k := .Values.secrets.keys -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $k.databaseUrl }}
- name: SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $k.secretKey }}
- name: JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $k.jwtSecret }}
      optional: {{ not (empty .Values.config.jwt.jwksUrl) }}
{{- if .Values.secrets.redisUrlInSecret }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $k.redisUrl }}
{{- end }}
{{- end }}

{{/*
The long-running workloads, as a map keyed by component. Each entry says how to run
the process and which values govern its size. deployments.yaml, hpa.yaml and pdb.yaml
all range over this one map.
*/}}
{{- define "todo-app.workloads" -}}
{{- $v := .Values -}}
web:
  appId: todo-web
  container: todo-web
  command: []
  portName: http
  port: {{ $v.web.containerPort }}
  settings:
    {{- toYaml (pick $v.web "replicas" "resources" "autoscaling" "pdb") | nindent 4 }}
{{- if $v.relay.enabled }}
relay:
  appId: todo-relay
  container: todo-relay
  command: ["python", "manage.py", "relay_events"]
  portName: metrics
  port: {{ $v.config.metricsPort }}
  settings:
    {{- toYaml (pick $v.relay "replicas" "resources" "pdb") | nindent 4 }}
{{- end }}
{{- range $name := list "recurrence" "notifications" "realtime" "audit" }}
{{- $c := get $v.consumers $name }}
{{- if $c.enabled }}
consumer-{{ $name }}:
  appId: todo-{{ $name }}
  container: todo-{{ $name }}
  command: ["python", "manage.py", "run_consumer", {{ $name | quote }}]
  portName: metrics
  port: {{ $v.config.metricsPort }}
  settings:
    {{- toYaml (mergeOverwrite (deepCopy $v.consumers.defaults) (omit $c "enabled" "topics" "deadLetterTopics")) | nindent 4 }}
{{- end }}
{{- end }}
{{- if not $v.dapr.enabled }}
reminder-scheduler:
  appId: ""
  container: todo-reminder-scheduler
  command: ["python", "manage.py", "run_reminder_scheduler"]
  portName: metrics
  port: {{ $v.config.metricsPort }}
  settings:
    {{- toYaml (pick $v.reminderScheduler "replicas" "resources" "pdb") | nindent 4 }}
{{- end }}
{{- end }}

{{/*
Dapr app ids that use the pub/sub component, with the topics each may publish and
subscribe. The relay publishes every application topic; a consumer subscribes to its
topics and may publish its dead-letter topics (deadLetterTopics, by default
`<topic>-dlq` for each of its topics: the sidecar publishes there for it).
*/}}
{{- define "todo-app.pubsubApps" -}}
{{- $v := .Values -}}
{{- $all := keys $v.topics.retentionMs | sortAlpha -}}
{{- if $v.relay.enabled }}
todo-relay:
  publish: {{ toJson $all }}
  subscribe: []
{{- end }}
{{- range $name := list "recurrence" "notifications" "realtime" "audit" }}
{{- $c := get $v.consumers $name }}
{{- if $c.enabled }}
{{- $dlq := $c.deadLetterTopics | default list }}
{{- if not $dlq }}
{{- range $c.topics }}{{ $dlq = append $dlq (printf "%s-dlq" .) }}{{ end }}
{{- end }}
todo-{{ $name }}:
  publish: {{ toJson $dlq }}
  subscribe: {{ toJson $c.topics }}
{{- end }}
{{- end }}
{{- end }}
