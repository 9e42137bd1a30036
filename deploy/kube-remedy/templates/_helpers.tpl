{{- define "kube-remedy.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kube-remedy.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kube-remedy.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kube-remedy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kube-remedy.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag, or repository@digest when a digest is given; call with (dict "image" .Values.image "default" tag). */}}
{{- define "kube-remedy.imageRef" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .default .image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "kube-remedy.image" -}}
{{- include "kube-remedy.imageRef" (dict "image" .Values.image "default" .Chart.AppVersion) -}}
{{- end -}}

{{/* The Redis URL given as a plain value (no password): the bundled Redis unless redis.url is set. */}}
{{- define "kube-remedy.redisUrl" -}}
{{- if .Values.redis.url -}}
{{- .Values.redis.url -}}
{{- else if .Values.redis.bundled -}}
{{- printf "redis://%s-redis:%v/0" (include "kube-remedy.fullname" .) .Values.redis.port -}}
{{- else -}}
{{- fail "redis: set redis.url, redis.urlFromSecret, or redis.bundled" -}}
{{- end -}}
{{- end -}}

{{/* Checkov waivers, each with its reason (metadata annotations): an image not pinned by digest,
and a token for the one pod that reads the cluster. Call with (dict "digest" ... "key" ... "token" bool). */}}
{{- define "kube-remedy.waivers" -}}
{{- if not .digest }}
checkov.io/skip1: CKV_K8S_43=image pinned by tag only; set {{ .key }}.digest to pull by digest
{{- end }}
{{- if .token }}
checkov.io/skip2: CKV_K8S_38=clusterReader.enabled - the worker reads scan results from the Kubernetes API
{{- end }}
{{- end -}}

{{/* The pod spec shared by worker, beat and web; call with (dict "root" $ "component" "worker" "args" (list ...) "resources" ... "probe" ... "ports" ...). */}}
{{- define "kube-remedy.podSpec" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "kube-remedy.serviceAccountName" $root }}
automountServiceAccountToken: {{ and $root.Values.clusterReader.enabled (eq .component "worker") }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
containers:
  - name: {{ .component }}
    image: {{ include "kube-remedy.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args:
      {{- toYaml .args | nindent 6 }}
    env:
      - name: REMEDY_CONFIG
        value: /etc/kube-remedy/config.yaml
      {{- if $root.Values.redis.urlFromSecret }}
      - name: REMEDY_REDIS_URL_FILE
        value: /var/run/secrets/kube-remedy/redis-url
      {{- else }}
      - name: REMEDY_REDIS_URL
        value: {{ include "kube-remedy.redisUrl" $root | quote }}
      {{- end }}
      - name: REMEDY_GITLAB_TOKEN_FILE
        value: /var/run/secrets/kube-remedy/gitlab-token
      - name: REMEDY_WEBHOOK_SECRET_FILE
        value: /var/run/secrets/kube-remedy/webhook-secret
      - name: REMEDY_DATA_DIR
        value: /data
      - name: REMEDY_METRICS_PORT
        value: {{ $root.Values.worker.metricsPort | quote }}
      - name: REMEDY_WORKER_CONCURRENCY
        value: {{ $root.Values.worker.concurrency | quote }}
      - name: REMEDY_WEB_HOST
        value: 0.0.0.0
      - name: REMEDY_WEB_PORT
        value: {{ $root.Values.web.port | quote }}
      - name: PYTHONDONTWRITEBYTECODE
        value: "1"
    {{- with .ports }}
    ports:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    readinessProbe:
      {{- toYaml .probe | nindent 6 }}
      periodSeconds: 30
      timeoutSeconds: 5
    livenessProbe:
      {{- toYaml .probe | nindent 6 }}
      initialDelaySeconds: 30
      periodSeconds: 60
      timeoutSeconds: 5
      failureThreshold: 5
    resources:
      {{- toYaml .resources | nindent 6 }}
    securityContext:
      {{- toYaml $root.Values.securityContext | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      - name: data
        mountPath: /data
      - name: config
        mountPath: /etc/kube-remedy
        readOnly: true
      - name: secrets
        mountPath: /var/run/secrets/kube-remedy
        readOnly: true
volumes:
  - name: tmp
    emptyDir: {}
  - name: data
    emptyDir: {}
  - name: config
    configMap:
      name: {{ include "kube-remedy.fullname" $root }}
  - name: secrets
    secret:
      secretName: {{ $root.Values.existingSecret }}
{{- with $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
