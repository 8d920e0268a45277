{{/* Names and labels shared by every template. */}}

{{- define "restream-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped objects (ClusterRoles, ClusterRoleBindings, the webhook
     configuration the operator registers) hold the release's namespace in their name as
     well: release names are unique only within a namespace, and two installations (each
     watching its own namespaces) must not take each other's. */}}
{{- define "restream-operator.clusterName" -}}
{{- printf "%s-%s" (include "restream-operator.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "restream-operator.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "restream-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "restream-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "restream-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "restream-operator.webhookService" -}}
{{- printf "%s-webhook" (include "restream-operator.fullname" .) -}}
{{- end -}}

{{/* The names of imagePullSecrets, as the JSON list RESTREAM_IMAGE_PULL_SECRETS takes. */}}
{{- define "restream-operator.pullSecretNames" -}}
{{- $names := list -}}
{{- range .Values.imagePullSecrets }}{{ $names = append $names .name }}{{ end -}}
{{- toJson $names -}}
{{- end -}}

{{- define "restream-operator.image" -}}
{{- printf "%s:%s" .repository (default $.appVersion .tag) -}}
{{- end -}}

{{/* The console's pods: a name of their own, so that neither the operator's Deployment
     nor the NetworkPolicies that let the operator's pods reach the agents select them. */}}
{{- define "restream-operator.consoleSelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}-console
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "restream-operator.consoleLabels" -}}
{{ include "restream-operator.consoleSelectorLabels" . }}
app.kubernetes.io/component: console
app.kubernetes.io/part-of: {{ .Chart.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
