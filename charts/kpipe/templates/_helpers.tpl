{{/* The image of the manager and of the pipeline pods. */}}
{{- define "kpipe.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "kpipe.selector" -}}
app.kubernetes.io/name: kpipe
app.kubernetes.io/component: manager
{{- end -}}

{{- define "kpipe.labels" -}}
{{ include "kpipe.selector" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
