{{/* The release's name for its objects, within Kubernetes' 63 characters. */}}
{{- define "assistd.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "assistd.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "assistd.labels" -}}
{{ include "assistd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "assistd.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "assistd.secretName" -}}
{{ .Values.secret.name | default (include "assistd.fullname" .) }}
{{- end -}}

{{/* Every container's settings: the chart's ConfigMap and the Secret. */}}
{{- define "assistd.envFrom" -}}
envFrom:
  - configMapRef: {name: {{ include "assistd.fullname" . }}}
  - secretRef: {name: {{ include "assistd.secretName" . }}}
{{- end -}}
