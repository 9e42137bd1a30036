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

{{- define "kube-remedy.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
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
      - name: REMEDY_REDIS_URL
        valueFrom:
          secretKeyRef:
            name: {{ $root.Values.existingSecret }}
            key: redis-url
            optional: true
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
