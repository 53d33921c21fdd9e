{{/*
Names. Kubernetes names are at most 63 characters (DNS labels), so every helper truncates.
*/}}
{{- define "sidecar-injector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sidecar-injector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A name derived from the full name: (fullname truncated to fit) + "-" + suffix. */}}
{{- define "sidecar-injector.suffixed" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- $base := include "sidecar-injector.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base $suffix }}
{{- end }}

{{- define "sidecar-injector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sidecar-injector.serviceName" -}}
{{- include "sidecar-injector.fullname" . }}
{{- end }}

{{- define "sidecar-injector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sidecar-injector.fullname" .) .Values.serviceAccount.name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sidecar-injector.templatesConfigMapName" -}}
{{- if .Values.templatesConfigMap.existing }}
{{- .Values.templatesConfigMap.existing }}
{{- else }}
{{- include "sidecar-injector.suffixed" (list . "templates") }}
{{- end }}
{{- end }}

{{- define "sidecar-injector.selfSignedIssuerName" -}}
{{- include "sidecar-injector.suffixed" (list . "selfsigned") }}
{{- end }}

{{- define "sidecar-injector.caName" -}}
{{- include "sidecar-injector.suffixed" (list . "ca") }}
{{- end }}

{{- define "sidecar-injector.servingCertName" -}}
{{- include "sidecar-injector.suffixed" (list . "serving") }}
{{- end }}

{{/* The Secret mounted as the serving certificate. */}}
{{- define "sidecar-injector.tlsSecretName" -}}
{{- if .Values.certManager.enabled }}
{{- include "sidecar-injector.suffixed" (list . "tls") }}
{{- else }}
{{- required "tls.existingSecret is required when certManager.enabled is false" .Values.tls.existingSecret }}
{{- end }}
{{- end }}

{{/*
The Certificate whose Secret's ca.crt cert-manager's cainjector copies into the caBundle:
the chart's own CA (stable across serving-cert renewals), or the serving certificate when an
external issuer signs it (its ca.crt is that issuer's CA).
*/}}
{{- define "sidecar-injector.caInjectionSource" -}}
{{- if .Values.certManager.issuerRef.name }}
{{- printf "%s/%s" .Release.Namespace (include "sidecar-injector.servingCertName" .) }}
{{- else }}
{{- printf "%s/%s" .Release.Namespace (include "sidecar-injector.caName" .) }}
{{- end }}
{{- end }}

{{/* Labels. */}}
{{- define "sidecar-injector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sidecar-injector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sidecar-injector.labels" -}}
helm.sh/chart: {{ include "sidecar-injector.chart" . }}
{{ include "sidecar-injector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sidecar-injector
{{- end }}

{{/* The webhook Pods: selector labels plus the component. */}}
{{- define "sidecar-injector.webhookSelectorLabels" -}}
{{ include "sidecar-injector.selectorLabels" . }}
app.kubernetes.io/component: webhook
{{- end }}

{{/* Labels that only the helm test Pod carries; the test webhook entry selects them. */}}
{{- define "sidecar-injector.testSelectorLabels" -}}
{{ include "sidecar-injector.selectorLabels" . }}
app.kubernetes.io/component: helm-test
{{- end }}

{{/* The image reference: by digest when one is given, else by tag (default appVersion). */}}
{{- define "sidecar-injector.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Namespaces the service skips: kube-system always, plus config.excludeNamespaces. */}}
{{- define "sidecar-injector.serviceExcludedNamespaces" -}}
{{- prepend .Values.config.excludeNamespaces "kube-system" | uniq | join "," }}
{{- end }}

{{/*
Namespaces never sent to the webhook: those the service skips plus the release namespace,
so that the injector's own Pods never depend on it.
*/}}
{{- define "sidecar-injector.webhookExcludedNamespaces" -}}
{{- append (prepend .Values.config.excludeNamespaces "kube-system") .Release.Namespace | uniq | toJson }}
{{- end }}

{{/* The opt-in annotation. */}}
{{- define "sidecar-injector.injectAnnotation" -}}
{{- printf "%s/inject" .Values.config.annotationPrefix }}
{{- end }}

{{/*
config.nativeSidecars as the service's flag value: auto is true from Kubernetes 1.29 (native
sidecars on by default), pre-release and vendor suffixes such as -eks-... included.
*/}}
{{- define "sidecar-injector.nativeSidecars" -}}
{{- $value := toString .Values.config.nativeSidecars }}
{{- if eq $value "auto" }}
{{- semverCompare ">=1.29.0-0" .Capabilities.KubeVersion.Version }}
{{- else }}
{{- $value }}
{{- end }}
{{- end }}

{{/*
The settings flags the webhook's decision depends on, as a JSON list (list: root, the
--exclude-namespaces value). The webhook and the audit both take them from here: the audit
judges pods as the webhook admits them only with the same settings.
*/}}
{{- define "sidecar-injector.settingsArgs" -}}
{{- $root := index . 0 }}
{{- $config := $root.Values.config }}
{{- $args := list
      (printf "--annotation-prefix=%s" $config.annotationPrefix)
      (printf "--default-templates=%s" (join "," $config.defaultTemplates))
      (printf "--exclude-namespaces=%s" (index . 1))
      (printf "--native-sidecars=%s" (include "sidecar-injector.nativeSidecars" $root)) }}
{{- range $name, $templates := $config.profiles }}
{{- $args = append $args (printf "--profile=%s=%s" $name (join "," $templates)) }}
{{- end }}
{{- toJson $args }}
{{- end }}

{{/*
The namespaces the audit skips: those never sent to the webhook (the release namespace
included), since their pods are never injected and would all count as missed.
*/}}
{{- define "sidecar-injector.auditExcludedNamespaces" -}}
{{- include "sidecar-injector.webhookExcludedNamespaces" . | fromJsonArray | join "," }}
{{- end }}

{{- define "sidecar-injector.auditName" -}}
{{- include "sidecar-injector.suffixed" (list . "audit") }}
{{- end }}

{{/* The last-good ConfigMap: its name, and whether the release keeps one ("true" or ""). */}}
{{- define "sidecar-injector.lastGoodName" -}}
{{- include "sidecar-injector.suffixed" (list . "last-good") }}
{{- end }}

{{- define "sidecar-injector.keepLastGood" -}}
{{- if and .Values.audit.enabled .Values.audit.keepLastGood }}true{{- end }}
{{- end }}

{{- define "sidecar-injector.auditServiceAccountName" -}}
{{- if .Values.audit.serviceAccount.create }}
{{- default (include "sidecar-injector.auditName" .) .Values.audit.serviceAccount.name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- default "default" .Values.audit.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The audit Pod: selector labels plus the component. */}}
{{- define "sidecar-injector.auditSelectorLabels" -}}
{{ include "sidecar-injector.selectorLabels" . }}
app.kubernetes.io/component: audit
{{- end }}

{{/* The seconds the service needs to stop after SIGTERM: drain period plus graceful stop. */}}
{{- define "sidecar-injector.stopSeconds" -}}
{{- add .Values.config.shutdownDelaySeconds .Values.config.gracefulTimeoutSeconds }}
{{- end }}

{{- define "sidecar-injector.terminationGracePeriodSeconds" -}}
{{- $stop := include "sidecar-injector.stopSeconds" . | int }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $stop 5 }}
{{- else if le (int .Values.terminationGracePeriodSeconds) $stop }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed config.shutdownDelaySeconds + config.gracefulTimeoutSeconds (%d)" (int .Values.terminationGracePeriodSeconds) $stop) }}
{{- else }}
{{- .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/* webhook.caBundle as the API wants it (base64), accepting plain PEM too. */}}
{{- define "sidecar-injector.caBundle" -}}
{{- $bundle := .Values.webhook.caBundle | trim }}
{{- if hasPrefix "-----BEGIN" $bundle }}
{{- printf "%s\n" $bundle | b64enc }}
{{- else }}
{{- $bundle }}
{{- end }}
{{- end }}

{{/*
The clientConfig of one webhook entry (list root path; path is /mutate, /mutate/<profile> or
/validate): the external URL (webhook.url ends in /mutate; the path replaces that), or the
Service; plus the caBundle when cert-manager does not inject it.
*/}}
{{- define "sidecar-injector.clientConfig" -}}
{{- $root := index . 0 }}
{{- $path := index . 1 }}
{{- with $root }}
{{- if .Values.webhook.url }}
url: {{ printf "%s%s" (trimSuffix "/mutate" .Values.webhook.url) $path | quote }}
{{- else }}
service:
  name: {{ include "sidecar-injector.serviceName" . }}
  namespace: {{ .Release.Namespace }}
  path: {{ $path }}
  port: {{ .Values.service.port }}
{{- end }}
{{- if not .Values.certManager.enabled }}
{{- $bundle := include "sidecar-injector.caBundle" . }}
{{- if $bundle }}
caBundle: {{ $bundle }}
{{- else if not .Values.webhook.url }}
{{- fail "webhook.caBundle is required when certManager.enabled is false (the CA that signed tls.existingSecret)" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
matchConditions: only Pods that opt in reach the webhook, so unrelated Pods never depend
on it. "false" and "" (any case, surrounding spaces ignored) mean not opted in, as in the
service; trim() and lowerAscii() are in Kubernetes' CEL strings library.
*/}}
{{- define "sidecar-injector.matchConditions" -}}
{{- $key := include "sidecar-injector.injectAnnotation" . | squote }}
- name: opted-in
  expression: >-
    has(object.metadata.annotations) && {{ $key }} in object.metadata.annotations &&
    !(object.metadata.annotations[{{ $key }}].trim().lowerAscii() in ['', 'false'])
{{- end }}

{{/*
matchConditions of the namespace-profile entries: every Pod of the namespace, except those that
opt out with their own annotation ("false" or "", as above).
*/}}
{{- define "sidecar-injector.profileMatchConditions" -}}
{{- $key := include "sidecar-injector.injectAnnotation" . | squote }}
- name: not-opted-out
  expression: >-
    !has(object.metadata.annotations) || !({{ $key }} in object.metadata.annotations) ||
    !(object.metadata.annotations[{{ $key }}].trim().lowerAscii() in ['', 'false'])
{{- end }}

{{/*
The namespace label values that select templates, as a JSON list: config.profiles, plus
"enabled" when default templates are set. The service routes exactly the same set.
*/}}
{{- define "sidecar-injector.routedProfiles" -}}
{{- $profiles := keys .Values.config.profiles | sortAlpha }}
{{- if .Values.config.defaultTemplates }}
{{- $profiles = append $profiles "enabled" }}
{{- end }}
{{- toJson $profiles }}
{{- end }}

{{/*
One entry of the MutatingWebhookConfiguration for application Pods (dict: root, name, suffix
of the /mutate path, namespaceExpressions on top of the usual exclusions, conditions helper).
*/}}
{{- define "sidecar-injector.webhookEntry" -}}
{{- $root := .root }}
{{- with $root }}
- name: {{ $.name }}
  admissionReviewVersions: ["v1"]
  sideEffects: None
  failurePolicy: {{ .Values.webhook.failurePolicy }}
  timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
  reinvocationPolicy: {{ .Values.webhook.reinvocationPolicy }}
  matchPolicy: Equivalent
  clientConfig:
    {{- include "sidecar-injector.clientConfig" (list . (printf "/mutate%s" $.suffix)) | trim | nindent 4 }}
  rules:
    - operations: ["CREATE"]
      apiGroups: [""]
      apiVersions: ["v1"]
      resources: ["pods"]
      scope: Namespaced
  namespaceSelector:
    {{- with .Values.webhook.namespaceSelector.matchLabels }}
    matchLabels:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    matchExpressions:
      - key: kubernetes.io/metadata.name
        operator: NotIn
        values: {{ include "sidecar-injector.webhookExcludedNamespaces" . }}
      {{- toYaml $.namespaceExpressions | nindent 6 }}
      {{- with .Values.webhook.namespaceSelector.matchExpressions }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
  {{- with .Values.webhook.objectSelector }}
  objectSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  matchConditions:
    {{- include $.conditions . | trim | nindent 4 }}
{{- end }}
{{- end }}

{{/*
The chart-managed templates as a JSON object, ConfigMap key -> text: the shipped examples,
the helm-test template, then the user's (which win on a name clash).
*/}}
{{- define "sidecar-injector.templates" -}}
{{- $templates := dict }}
{{- if .Values.templatesConfigMap.examples }}
{{- range $path, $_ := .Files.Glob "files/examples/*.yaml" }}
{{- $_ := set $templates (base $path) ($.Files.Get $path) }}
{{- end }}
{{- end }}
{{- if .Values.tests.enabled }}
{{- $_ := set $templates "helm-test.yaml" (.Files.Get "files/helm-test.yaml") }}
{{- end }}
{{- range $name, $template := .Values.templates }}
{{- $_ := set $templates (printf "%s.yaml" $name) (toYaml $template) }}
{{- end }}
{{- toJson $templates }}
{{- end }}

{{/*
The job label of the webhook's metrics: the Service's name, which the ServiceMonitor sets
explicitly. With the release namespace it is what every alert and dashboard query selects.
*/}}
{{- define "sidecar-injector.metricsJob" -}}
{{- include "sidecar-injector.serviceName" . }}
{{- end }}

{{/* The PromQL label matchers of the webhook's metrics: job="<Service>",namespace="<ns>". */}}
{{- define "sidecar-injector.metricsSelector" -}}
{{- printf "job=%q,namespace=%q" (include "sidecar-injector.metricsJob" .) .Release.Namespace }}
{{- end }}

{{/*
The job label of the audit's metrics: its Service's name, set by its ServiceMonitor as the
webhook's is. Its gauges carry the audited pods' own namespace label (the ServiceMonitor
honors it), so their queries select the job alone; up and the audit's other metrics also
carry the release namespace.
*/}}
{{- define "sidecar-injector.auditMetricsJob" -}}
{{- include "sidecar-injector.auditName" . }}
{{- end }}

{{/* The PromQL label matcher of the audit's pod gauges: job="<audit Service>". */}}
{{- define "sidecar-injector.auditPodsSelector" -}}
{{- printf "job=%q" (include "sidecar-injector.auditMetricsJob" .) }}
{{- end }}

{{/* The PromQL label matchers of the audit's own metrics: job="<audit Service>",namespace="<ns>". */}}
{{- define "sidecar-injector.auditMetricsSelector" -}}
{{- printf "job=%q,namespace=%q" (include "sidecar-injector.auditMetricsJob" .) .Release.Namespace }}
{{- end }}
