{{/* Names, labels and the images. */}}

{{- define "custody.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every resource name: at most 40 characters, so that
"<fullname>-provider-keys" and friends stay within 63. */}}
{{- define "custody.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "custody.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "custody.selectorLabels" -}}
app.kubernetes.io/name: {{ include "custody.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "custody.labels" -}}
helm.sh/chart: {{ include "custody.chart" . }}
{{ include "custody.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: custody
{{- end -}}

{{- define "custody.injectorSelectorLabels" -}}
{{ include "custody.selectorLabels" . }}
app.kubernetes.io/component: injector
{{- end -}}

{{- define "custody.injectorLabels" -}}
{{ include "custody.labels" . }}
app.kubernetes.io/component: injector
{{- end -}}

{{- define "custody.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "custody.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "custody.injectorName" -}}
{{- printf "%s-injector" (include "custody.fullname" .) -}}
{{- end -}}

{{- define "custody.tlsSecretName" -}}
{{- printf "%s-webhook-tls" (include "custody.fullname" .) -}}
{{- end -}}

{{- define "custody.injectConfigMapName" -}}
{{- printf "%s-inject" (include "custody.fullname" .) -}}
{{- end -}}

{{- define "custody.configMapName" -}}
{{- if .Values.config.create -}}
{{- printf "%s-config" (include "custody.fullname" .) -}}
{{- else -}}
{{- required "config.existingConfigMap is required when config.create is false" .Values.config.existingConfigMap -}}
{{- end -}}
{{- end -}}

{{- define "custody.policyConfigMapName" -}}
{{- if .Values.policy.create -}}
{{- printf "%s-policy" (include "custody.fullname" .) -}}
{{- else -}}
{{- required "policy.existingConfigMap is required when policy.create is false" .Values.policy.existingConfigMap -}}
{{- end -}}
{{- end -}}

{{/* The provider-keys Secret's name, or "" when there is none. */}}
{{- define "custody.providerKeysSecretName" -}}
{{- if .Values.providerKeys.create -}}
{{- printf "%s-provider-keys" (include "custody.fullname" .) -}}
{{- else -}}
{{- .Values.providerKeys.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* The digest-key Secret's name, or "" when there is none. */}}
{{- define "custody.digestKeySecretName" -}}
{{- if .Values.digestKey.create -}}
{{- printf "%s-digest-key" (include "custody.fullname" .) -}}
{{- else -}}
{{- .Values.digestKey.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* repository:tag or repository@digest, from an image block and fallbacks. */}}
{{- define "custody.image" -}}
{{- $repo := .Values.image.repository -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{- define "custody.sidecarImage" -}}
{{- $s := .Values.sidecar.image -}}
{{- $repo := default .Values.image.repository $s.repository -}}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) $s.tag -}}
{{- $digest := $s.digest -}}
{{- if and (not $digest) (not $s.repository) (not $s.tag) -}}
{{- $digest = .Values.image.digest -}}
{{- end -}}
{{- if $digest -}}
{{- printf "%s@%s" $repo $digest -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/* The namespaces that get the per-namespace objects: the release namespace first,
then every workload namespace (deduplicated). */}}
{{- define "custody.targetNamespaces" -}}
{{- $out := list .Release.Namespace -}}
{{- range .Values.workloadNamespaces -}}
{{- if not (has . $out) -}}
{{- $out = append $out . -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The namespaces the webhook never sees: the release namespace and excludeNamespaces. */}}
{{- define "custody.excludedNamespaces" -}}
{{- $out := list .Release.Namespace -}}
{{- range .Values.webhook.excludeNamespaces -}}
{{- if not (has . $out) -}}
{{- $out = append $out . -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The DNS names of the injector Service (certificate SANs). */}}
{{- define "custody.serviceDNSNames" -}}
{{- $svc := include "custody.injectorName" . -}}
{{- $ns := .Release.Namespace -}}
{{- toJson (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.webhook.clusterDomain)) -}}
{{- end -}}
