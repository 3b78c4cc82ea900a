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
Where secrets.asFiles mounts the Secrets; each file is named after the variable it replaces.
*/}}
{{- define "todo-app.secretsDir" -}}
/run/secrets/todo
{{- end }}

{{/*
The secret-backed settings a process gets: a list of (variable, Secret, key, optional).
Called with (dict "root" $ "daprToken" bool "appToken" bool): the Dapr API token goes to
every process that calls its sidecar, the app token only to the one daprd calls (web).
JWT_SECRET is optional with JWKS.
*/}}
{{- define "todo-app.secretItems" -}}
{{- $v := .root.Values -}}
{{- $secret := include "todo-app.secretName" .root -}}
{{- $k := $v.secrets.keys -}}
- {env: DATABASE_URL, secret: {{ $secret }}, key: {{ $k.databaseUrl }}, optional: false}
- {env: SECRET_KEY, secret: {{ $secret }}, key: {{ $k.secretKey }}, optional: false}
- {env: JWT_SECRET, secret: {{ $secret }}, key: {{ $k.jwtSecret }}, optional: {{ not (empty $v.config.jwt.jwksUrl) }}}
{{- if $v.secrets.redisUrlInSecret }}
- {env: REDIS_URL, secret: {{ $secret }}, key: {{ $k.redisUrl }}, optional: false}
{{- end }}
{{- if and $v.dapr.enabled .daprToken $v.dapr.apiToken.enabled }}
- {env: DAPR_API_TOKEN, secret: {{ $v.dapr.apiToken.secretName }}, key: token, optional: false}
{{- end }}
{{- if and $v.dapr.enabled .appToken $v.dapr.appToken.enabled }}
- {env: APP_API_TOKEN, secret: {{ $v.dapr.appToken.secretName }}, key: token, optional: false}
{{- end }}
{{- end }}

{{/*
Secret-backed environment: each value from its Secret, or with secrets.asFiles the path
of its file (<NAME>_FILE). An optional value whose file may be missing gets no variable.
*/}}
{{- define "todo-app.secretEnv" -}}
{{- $asFiles := .root.Values.secrets.asFiles -}}
{{- range (include "todo-app.secretItems" . | fromYamlArray) }}
{{- if not $asFiles }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- else if not .optional }}
- name: {{ .env }}_FILE
  value: {{ printf "%s/%s" (include "todo-app.secretsDir" $.root) .env | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
With secrets.asFiles: one read-only projected volume holding every secret the process
gets, one file per variable. Same argument as "todo-app.secretItems".
*/}}
{{- define "todo-app.secretVolume" -}}
{{- if .root.Values.secrets.asFiles }}
- name: secrets
  projected:
    defaultMode: 0440
    sources:
      {{- range (include "todo-app.secretItems" . | fromYamlArray) }}
      - secret:
          name: {{ .secret }}
          items:
            - key: {{ .key }}
              path: {{ .env }}
          {{- if .optional }}
          optional: true
          {{- end }}
      {{- end }}
{{- end }}
{{- end }}

{{- define "todo-app.secretVolumeMount" -}}
{{- if .Values.secrets.asFiles }}
- name: secrets
  mountPath: {{ include "todo-app.secretsDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
A hash of everything the pods read from Secrets: the chart's secret values and, on a real
install or upgrade, the data of the Secrets they name (lookup is empty under `helm
template`). A changed Secret rolls the pods on the next `helm upgrade`.
*/}}
{{- define "todo-app.secretChecksum" -}}
{{- $v := .Values -}}
{{- $names := list -}}
{{- if not $v.secrets.create }}{{ $names = append $names $v.secrets.existingSecret }}{{ end }}
{{- if $v.dapr.enabled }}
{{- if $v.dapr.apiToken.enabled }}{{ $names = append $names $v.dapr.apiToken.secretName }}{{ end }}
{{- if $v.dapr.appToken.enabled }}{{ $names = append $names $v.dapr.appToken.secretName }}{{ end }}
{{- end }}
{{- $found := dict -}}
{{- range $names }}
{{- $_ := set $found . ((lookup "v1" "Secret" $.Release.Namespace .).data | default dict) }}
{{- end }}
{{- dict "values" $v.secrets "dapr" (pick $v.dapr "apiToken" "appToken") "secrets" $found | toJson | sha256sum }}
{{- end }}

{{/*
Consumers by their key under .Values.consumers, with the name `run_consumer` takes (and
the app id todo-<name>).
*/}}
{{- define "todo-app.consumerNames" -}}
recurrence: recurrence
notifications: notifications
realtime: realtime
audit: audit
deadLetters: dead-letters
{{- end }}

{{/*
The pod settings a workload may override (see values.yaml), resolved for one workload:
called with (dict "root" $ "settings" <the workload's values>). A workload's non-empty
value replaces the global one; annotations and labels merge; extraEnv and extraVolumes
merge by name; extraEnvFrom and extraVolumeMounts append.
*/}}
{{- define "todo-app.podOptions" -}}
{{- $v := .root.Values -}}
{{- $s := .settings -}}
{{- $envByName := dict }}
{{- $envNames := list }}
{{- range (concat $v.extraEnv ($s.extraEnv | default list)) }}
{{- if not (hasKey $envByName .name) }}{{ $envNames = append $envNames .name }}{{ end }}
{{- $_ := set $envByName .name . }}
{{- end }}
{{- $volumesByName := dict }}
{{- $volumeNames := list }}
{{- range (concat $v.extraVolumes ($s.extraVolumes | default list)) }}
{{- if not (hasKey $volumesByName .name) }}{{ $volumeNames = append $volumeNames .name }}{{ end }}
{{- $_ := set $volumesByName .name . }}
{{- end }}
podAnnotations: {{ mergeOverwrite (deepCopy $v.podAnnotations) ($s.podAnnotations | default dict) | toJson }}
podLabels: {{ mergeOverwrite (deepCopy $v.podLabels) ($s.podLabels | default dict) | toJson }}
nodeSelector: {{ $s.nodeSelector | default $v.nodeSelector | toJson }}
tolerations: {{ $s.tolerations | default $v.tolerations | toJson }}
affinity: {{ $s.affinity | default $v.affinity | toJson }}
topologySpreadConstraints: {{ $s.topologySpreadConstraints | default $v.topologySpreadConstraints | toJson }}
priorityClassName: {{ $s.priorityClassName | default $v.priorityClassName | quote }}
extraEnv:
{{- range $envNames }}
  - {{ get $envByName . | toJson }}
{{- end }}
extraEnvFrom: {{ concat $v.extraEnvFrom ($s.extraEnvFrom | default list) | toJson }}
extraVolumes:
{{- range $volumeNames }}
  - {{ get $volumesByName . | toJson }}
{{- end }}
extraVolumeMounts: {{ concat $v.extraVolumeMounts ($s.extraVolumeMounts | default list) | toJson }}
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
  valuesKey: web
  settings:
    {{- toYaml (pick $v.web "replicas" "resources" "autoscaling" "pdb") | nindent 4 }}
  pod:
    {{- include "todo-app.podOptions" (dict "root" . "settings" $v.web) | nindent 4 }}
{{- if $v.relay.enabled }}
relay:
  appId: todo-relay
  container: todo-relay
  command: ["python", "manage.py", "relay_events"]
  portName: metrics
  port: {{ $v.config.metricsPort }}
  valuesKey: relay
  settings:
    {{- toYaml (pick $v.relay "replicas" "resources" "pdb") | nindent 4 }}
  pod:
    {{- include "todo-app.podOptions" (dict "root" . "settings" $v.relay) | nindent 4 }}
{{- end }}
{{- range $key, $name := include "todo-app.consumerNames" . | fromYaml }}
{{- $c := get $v.consumers $key }}
{{- if $c.enabled }}
{{- $merged := mergeOverwrite (deepCopy $v.consumers.defaults) (omit $c "enabled" "topics" "deadLetterTopics") }}
consumer-{{ $name }}:
  appId: todo-{{ $name }}
  container: todo-{{ $name }}
  command: ["python", "manage.py", "run_consumer", {{ $name | quote }}]
  portName: metrics
  port: {{ $v.config.metricsPort }}
  valuesKey: consumers.{{ $key }}
  topics: {{ toJson $c.topics }}
  settings:
    {{- toYaml (pick $merged "replicas" "resources" "autoscaling" "pdb") | nindent 4 }}
  pod:
    {{- include "todo-app.podOptions" (dict "root" $ "settings" $merged) | nindent 4 }}
{{- end }}
{{- end }}
{{- if not $v.dapr.enabled }}
reminder-scheduler:
  appId: ""
  container: todo-reminder-scheduler
  command: ["python", "manage.py", "run_reminder_scheduler"]
  portName: metrics
  port: {{ $v.config.metricsPort }}
  valuesKey: reminderScheduler
  settings:
    {{- toYaml (pick $v.reminderScheduler "replicas" "resources" "pdb") | nindent 4 }}
  pod:
    {{- include "todo-app.podOptions" (dict "root" . "settings" dict) | nindent 4 }}
{{- end }}
{{- end }}

{{/*
Dapr app ids that use the pub/sub component, with the topics each may publish and
subscribe. The relay publishes every application topic; a consumer subscribes to its
topics and may publish its dead-letter topics (deadLetterTopics, by default
`<topic>-dlq` for each of its topics: the sidecar publishes there for it). The
dead-letters consumer reads those and dead-letters nothing itself.
*/}}
{{- define "todo-app.pubsubApps" -}}
{{- $v := .Values -}}
{{- $all := keys $v.topics.retentionMs | sortAlpha -}}
{{- if $v.relay.enabled }}
todo-relay:
  publish: {{ toJson $all }}
  subscribe: []
{{- end }}
{{- range $key, $name := include "todo-app.consumerNames" . | fromYaml }}
{{- $c := get $v.consumers $key }}
{{- if $c.enabled }}
{{- $dlq := $c.deadLetterTopics | default list }}
{{- if and (not $dlq) (ne $key "deadLetters") }}
{{- range $c.topics }}{{ $dlq = append $dlq (printf "%s-dlq" .) }}{{ end }}
{{- end }}
todo-{{ $name }}:
  publish: {{ toJson $dlq }}
  subscribe: {{ toJson $c.topics }}
{{- end }}
{{- end }}
{{- end }}
