{{- define "worker.fullname" -}}
{{- printf "%s-worker" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "worker.container" -}}
- name: worker
  image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
  {{- with .Values.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
{{- end }}
