{{/* Names: the release name, cut to what Kubernetes accepts. */}}
{{- define "relaykit.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "relaykit.headless" -}}
{{- printf "%s-pods" (include "relaykit.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "relaykit.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "relaykit.labels" -}}
{{ include "relaykit.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: smtp-relay
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 }}
{{- end -}}

{{- define "relaykit.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}
{{- end -}}

{{- define "relaykit.usersSecret" -}}
{{- required "set secrets.existingSecret: the Secret with the relay's users and TLS pair (keys listed in values.yaml)" .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "relaykit.tlsSecret" -}}
{{- default (include "relaykit.usersSecret" .) .Values.secrets.tlsSecret -}}
{{- end -}}

{{/*
Secret changes must reach the pods: the image reads /run/secrets at start, so the pod
template carries a checksum of the Secrets as they are at install/upgrade time (lookup
reads them from the cluster; offline rendering sees none) plus secrets.revision, which an
operator can bump to roll the pods without helm seeing the Secret.
*/}}
{{- define "relaykit.secretChecksum" -}}
{{- $users := lookup "v1" "Secret" .Release.Namespace (include "relaykit.usersSecret" .) -}}
{{- $tls := lookup "v1" "Secret" .Release.Namespace (include "relaykit.tlsSecret" .) -}}
{{- printf "%s/%s" (toJson ($users.data | default dict)) (toJson ($tls.data | default dict)) | sha256sum -}}
{{- end -}}

{{- define "relaykit.probe" -}}
exec:
  command: {{ toJson .command }}
{{- end -}}
