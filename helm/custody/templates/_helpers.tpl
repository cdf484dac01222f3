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
{{- $repo := required "image.repository is required: no custody image is published; build deploy/Dockerfile, push it to your registry and set image.repository (deploy/README.md)" .Values.image.repository -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{- define "custody.sidecarImage" -}}
{{- $s := .Values.sidecar.image -}}
{{- $repo := default (required "image.repository is required: no custody image is published; build deploy/Dockerfile, push it to your registry and set image.repository (deploy/README.md)" .Values.image.repository) $s.repository -}}
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

{{/* The namespaces the namespace and pod entries skip: the excluded ones and the
mandatory ones (which the mandatory entry alone handles). */}}
{{- define "custody.optInSkippedNamespaces" -}}
{{- $out := include "custody.excludedNamespaces" . | fromJsonArray -}}
{{- range .Values.webhook.mandatoryNamespaces -}}
{{- if not (has . $out) -}}
{{- $out = append $out . -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* A duration of custody's or Go's syntax ("25s", "1m30s", "500ms", "2h") in whole
seconds, rounded up. */}}
{{- define "custody.durationSeconds" -}}
{{- $text := toString . -}}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]+)?(ms|h|m|s) ?)+$" $text) -}}
{{- fail (printf "%q is not a duration this chart can read (e.g. 25s, 1m30s, 500ms)" $text) -}}
{{- end -}}
{{- $ms := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ms|h|m|s)" $text -1 -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" . -}}
{{- $unit := trimPrefix $num . -}}
{{- $factor := get (dict "ms" 1.0 "s" 1000.0 "m" 60000.0 "h" 3600000.0) $unit -}}
{{- $ms = addf $ms (mulf (float64 $num) $factor) -}}
{{- end -}}
{{- ceil (divf $ms 1000.0) | int -}}
{{- end -}}

{{/* The cluster's version as "<major>.<minor>" (EKS and GKE report minors like "28+"). */}}
{{- define "custody.kubeVersion" -}}
{{- printf "%s.%s" (regexFind "[0-9]+" .Capabilities.KubeVersion.Major) (regexFind "[0-9]+" .Capabilities.KubeVersion.Minor) -}}
{{- end -}}

{{/* Refuses what the cluster or the values cannot run; included by the templates
that depend on it (inject-configmap.yaml, deployment.yaml). */}}
{{- define "custody.validate" -}}
{{- if semverCompare "<1.25.0-0" .Capabilities.KubeVersion.Version -}}
{{- fail (printf "the custody chart needs Kubernetes 1.25 or later (Chart.yaml kubeVersion); this cluster is %s (with helm template, pass the cluster's version: --kube-version)" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- if and .Values.sidecar.nativeSidecar (semverCompare "<1.29.0-0" .Capabilities.KubeVersion.Version) -}}
{{- fail (printf "sidecar.nativeSidecar=true needs Kubernetes 1.29 or later (native sidecar containers: an init container with restartPolicy Always), but this cluster is %s: every opted-in pod would be refused. Set sidecar.nativeSidecar=false (the sidecar becomes a plain container; docs/kubernetes.md, \"Requirements\"), or upgrade the cluster. With helm template, pass --kube-version." .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- if hasKey .Values.webhook "failurePolicy" -}}
{{- fail "webhook.failurePolicy was replaced by one failure policy per webhook entry: webhook.namespaceEntry.failurePolicy (default Fail) and webhook.podEntry.failurePolicy (default Fail with podOptIn=label, Ignore with podOptIn=annotation); the mandatory entry is always Fail" -}}
{{- end -}}
{{- $excluded := include "custody.excludedNamespaces" . | fromJsonArray -}}
{{- range .Values.webhook.mandatoryNamespaces -}}
{{- if has . $excluded -}}
{{- fail (printf "webhook.mandatoryNamespaces lists %q, which is excluded (the release namespace or webhook.excludeNamespaces): a namespace is either mandatory or never injected" .) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.config.create (include "custody.localSink" .) (not .Values.config.allowLocalSink) -}}
{{- fail (printf "config.custody.audit.sink is the local directory %q: the audit files would stay in the pod, without retention, lost with the pod and filling the volume until the kubelet evicts it. Set config.custody.audit.sink to s3://bucket/prefix (gs://, az://), or acknowledge with config.allowLocalSink=true (trials)" (include "custody.localSink" .)) -}}
{{- end -}}
{{- if and (eq .Values.sidecar.spool.volume "emptyDir") (or .Values.sidecar.spool.retain .Values.sidecar.spool.storageClass) -}}
{{- fail "sidecar.spool.storageClass and sidecar.spool.retain apply to sidecar.spool.volume=ephemeral only" -}}
{{- end -}}
{{- $drain := add (include "custody.durationSeconds" .Values.injector.drainDelay) (include "custody.durationSeconds" .Values.injector.shutdownGrace) -}}
{{- if gt (int $drain) (int .Values.injector.terminationGracePeriodSeconds) -}}
{{- fail (printf "injector.drainDelay (%s) + injector.shutdownGrace (%s) must fit in injector.terminationGracePeriodSeconds (%d): after SIGTERM the injector drains for drainDelay, then lets reviews in flight finish for shutdownGrace" .Values.injector.drainDelay .Values.injector.shutdownGrace (int .Values.injector.terminationGracePeriodSeconds)) -}}
{{- end -}}
{{- $graceNeed := add (include "custody.durationSeconds" (dig "shutdown" "grace_period" "25s" .Values.config.custody)) (int .Values.sidecar.terminationGrace.marginSeconds) -}}
{{- if gt (int $graceNeed) 3600 -}}
{{- fail (printf "config.custody.shutdown.grace_period + sidecar.terminationGrace.marginSeconds is %d s: the injector accepts at most 3600 (termination_grace.sidecar_seconds)" (int $graceNeed)) -}}
{{- end -}}
{{- end -}}

{{/* The audit sink when it is a local directory, else "" (object storage). */}}
{{- define "custody.localSink" -}}
{{- $audit := default (dict) .Values.config.custody.audit -}}
{{- $sink := toString (default (default "./custody-audit" $audit.dir) $audit.sink) -}}
{{- if not (regexMatch "^(s3|gs|az)://" $sink) -}}
{{- $sink -}}
{{- end -}}
{{- end -}}

{{/* Whether the spool is lost with the pod: an emptyDir always; a generic ephemeral
volume unless its StorageClass retains the volume (sidecar.spool.retain). */}}
{{- define "custody.spoolEphemeral" -}}
{{- if and (eq .Values.sidecar.spool.volume "ephemeral") .Values.sidecar.spool.retain -}}
false
{{- else -}}
true
{{- end -}}
{{- end -}}

{{/* The sidecar's custody.yaml as the chart renders it: config.custody, plus the
digest key the webhook mounts (unless audit.digests is given) and
audit.spool.ephemeral from sidecar.spool (unless given). */}}
{{- define "custody.sidecarConfig" -}}
{{- $custody := deepCopy .Values.config.custody -}}
{{- $audit := default (dict) $custody.audit -}}
{{- if include "custody.digestKeySecretName" . -}}
{{- if not (hasKey $audit "digests") -}}
{{- $_ := set $audit "digests" (dict "signing_key_file" "/etc/custody/digest/key") -}}
{{- end -}}
{{- end -}}
{{- $spool := default (dict) $audit.spool -}}
{{- if not (hasKey $spool "ephemeral") -}}
{{- $_ := set $spool "ephemeral" (eq (include "custody.spoolEphemeral" .) "true") -}}
{{- end -}}
{{- $_ := set $audit "spool" $spool -}}
{{- $_ := set $custody "audit" $audit -}}
{{- toYaml $custody -}}
{{- end -}}

{{/* inject.yaml's config_hash: sha256 over the rendered custody.yaml and policy, or
sidecar.configHash. */}}
{{- define "custody.configHash" -}}
{{- if .Values.sidecar.configHash -}}
{{- .Values.sidecar.configHash -}}
{{- else -}}
{{- $config := ternary (include "custody.sidecarConfig" .) (printf "configmap:%s" .Values.config.existingConfigMap) .Values.config.create -}}
{{- $policy := ternary .Values.policy.content (printf "configmap:%s" .Values.policy.existingConfigMap) .Values.policy.create -}}
{{- printf "%s\n---\n%s" $config $policy | sha256sum -}}
{{- end -}}
{{- end -}}

{{/* A port number from "host:port" (listen.tcp, listen.admin), or the fallback. */}}
{{- define "custody.listenPort" -}}
{{- $addr := toString (default "" .addr) -}}
{{- $port := regexFind "[0-9]+$" $addr -}}
{{- default .fallback $port -}}
{{- end -}}

{{/* The webhook's serving certificate (Helm-generated path) as JSON: crt, key, ca
(base64 PEM), bundle (base64 PEM: the caBundle), notAfter (RFC 3339) and rotated.
`existing` is the Secret found on upgrade (or an empty map): reused unless a rotation
is due (tls.generated.rotate, or the certificate expires within rotateBeforeDays);
a rotation keeps the previous CA in the bundle next to the new one, so the API server
trusts both the certificate the injectors still serve and the new one they switch to
when the Secret volume refreshes. */}}
{{- define "custody.webhookTLS" -}}
{{- $root := .root -}}
{{- $existing := .existing -}}
{{- $g := $root.Values.tls.generated -}}
{{- $fullname := include "custody.fullname" $root -}}
{{- $svc := include "custody.injectorName" $root -}}
{{- $have := and $existing $existing.data (index $existing.data "tls.crt") (index $existing.data "tls.key") (index $existing.data "ca.crt") -}}
{{- $notAfter := "" -}}
{{- $rotate := false -}}
{{- if $have -}}
{{- $notAfter = dig "metadata" "annotations" "custody.dev/not-after" "" $existing -}}
{{- if $g.rotate -}}
{{- $rotate = true -}}
{{- else if and $notAfter (gt (int $g.rotateBeforeDays) 0) -}}
{{- $left := sub (toDate "2006-01-02T15:04:05Z07:00" $notAfter | unixEpoch | atoi) (now | unixEpoch | atoi) -}}
{{- if lt (int64 $left) (mul (int $g.rotateBeforeDays) 86400 | int64) -}}
{{- $rotate = true -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $out := dict "rotated" $rotate -}}
{{- if and $have (not $rotate) -}}
{{- $ca := index $existing.data "ca.crt" -}}
{{- $_ := set $out "crt" (index $existing.data "tls.crt") -}}
{{- $_ := set $out "key" (index $existing.data "tls.key") -}}
{{- $_ := set $out "ca" $ca -}}
{{- $_ := set $out "bundle" (default $ca (index $existing.data "ca-bundle.crt")) -}}
{{- $_ := set $out "notAfter" $notAfter -}}
{{- else -}}
{{- $days := int $g.validityDays -}}
{{- $genCA := genCA (printf "%s-webhook-ca" $fullname) $days -}}
{{- $dns := include "custody.serviceDNSNames" $root | fromJsonArray -}}
{{- $cert := genSignedCert (printf "%s.%s.svc" $svc $root.Release.Namespace) nil $dns $days $genCA -}}
{{- $_ := set $out "crt" ($cert.Cert | b64enc) -}}
{{- $_ := set $out "key" ($cert.Key | b64enc) -}}
{{- $_ := set $out "ca" ($genCA.Cert | b64enc) -}}
{{- $bundle := $genCA.Cert | trimSuffix "\n" -}}
{{- if $have -}}
{{- $bundle = printf "%s\n%s" $bundle (index $existing.data "ca.crt" | b64dec | trimSuffix "\n") -}}
{{- end -}}
{{- $_ := set $out "bundle" (printf "%s\n" $bundle | b64enc) -}}
{{- $_ := set $out "notAfter" (dateInZone "2006-01-02T15:04:05Z" (now | dateModify (printf "+%dh" (mul $days 24))) "UTC") -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The DNS names of the injector Service (certificate SANs). */}}
{{- define "custody.serviceDNSNames" -}}
{{- $svc := include "custody.injectorName" . -}}
{{- $ns := .Release.Namespace -}}
{{- toJson (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.webhook.clusterDomain)) -}}
{{- end -}}

{{/* toYaml of a map without its null values (securityContext: runAsUser: null
leaves the field to the platform, e.g. OpenShift's SCC). */}}
{{- define "custody.withoutNulls" -}}
{{- $out := dict -}}
{{- range $k, $v := . -}}
{{- if not (kindIs "invalid" $v) -}}
{{- $_ := set $out $k $v -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}
