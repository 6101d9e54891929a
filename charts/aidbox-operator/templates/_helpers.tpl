{{- define "aidbox-operator.fullname" -}}
{{- if contains "aidbox-operator" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-aidbox-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "aidbox-operator.labels" -}}
app.kubernetes.io/name: aidbox-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: aidbox-operator
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "aidbox-operator.selectorLabels" -}}
app.kubernetes.io/name: aidbox-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The rules of a deploy/base RBAC file (the first document), read through files/ symlinks. */}}
{{- define "aidbox-operator.rules" -}}
{{- $doc := index (regexSplit "\n---\n" (.root.Files.Get .file) -1) 0 | fromYaml -}}
{{- toYaml $doc.rules -}}
{{- end -}}
