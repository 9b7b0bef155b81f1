{{/*
Labels on every object's metadata. Selectors and pod-template labels stay the
kustomize base's `app: <component>`, so the two install paths select the same
pods.
*/}}
{{- define "nodeeni.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The controllers' namespace: the release namespace, never a shared system one. */}}
{{- define "nodeeni.namespace" -}}
{{- $ns := .Release.Namespace -}}
{{- if has $ns (list "default" "kube-system" "kube-public" "kube-node-lease") -}}
{{- fail (printf "install into a namespace of its own, not %q: helm install nodeeni deploy/helm/nodeeni -n nodeeni-system --create-namespace" $ns) -}}
{{- end -}}
{{- if eq $ns .Values.nodeAgent.namespace -}}
{{- fail (printf "the release namespace %q must differ from nodeAgent.namespace: the controllers' namespace enforces the restricted Pod Security Standard, the node agent's allows privileged pods" $ns) -}}
{{- end -}}
{{- $ns -}}
{{- end }}

{{- define "nodeeni.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* image, imagePullPolicy of a container */}}
{{- define "nodeeni.containerImage" -}}
image: {{ include "nodeeni.image" . | quote }}
{{- with .Values.image.pullPolicy }}
imagePullPolicy: {{ . }}
{{- end }}
{{- end }}

{{- define "nodeeni.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Where the Temporal credentials are mounted, and the variables that name them
(workers/config.ts: the names the temporal CLI reads, plus TEMPORAL_API_KEY_FILE).
*/}}
{{- define "nodeeni.temporalTlsDir" -}}/var/run/secrets/nodeeni/temporal-tls{{- end }}
{{- define "nodeeni.temporalApiKeyDir" -}}/var/run/secrets/nodeeni/temporal-api-key{{- end }}

{{- define "nodeeni.temporalEnv" -}}
- name: TEMPORAL_ADDRESS
  value: {{ .Values.temporal.address | quote }}
- name: TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
{{- $tls := .Values.temporal.tls }}
{{- if $tls.enabled }}
- name: TEMPORAL_TLS
  value: "true"
{{- if $tls.existingSecret }}
{{- with $tls.secretKeys.ca }}
- name: TEMPORAL_TLS_SERVER_CA_CERT_PATH
  value: {{ printf "%s/%s" (include "nodeeni.temporalTlsDir" $) . | quote }}
{{- end }}
{{- if and $tls.secretKeys.cert $tls.secretKeys.key }}
- name: TEMPORAL_TLS_CLIENT_CERT_PATH
  value: {{ printf "%s/%s" (include "nodeeni.temporalTlsDir" $) $tls.secretKeys.cert | quote }}
- name: TEMPORAL_TLS_CLIENT_KEY_PATH
  value: {{ printf "%s/%s" (include "nodeeni.temporalTlsDir" $) $tls.secretKeys.key | quote }}
{{- end }}
{{- end }}
{{- with $tls.serverName }}
- name: TEMPORAL_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- if .Values.temporal.apiKey.existingSecret }}
- name: TEMPORAL_API_KEY_FILE
  value: {{ printf "%s/%s" (include "nodeeni.temporalApiKeyDir" .) .Values.temporal.apiKey.key | quote }}
{{- end }}
{{- end }}

{{- define "nodeeni.temporalVolumeMounts" -}}
{{- if and .Values.temporal.tls.enabled .Values.temporal.tls.existingSecret }}
- name: temporal-tls
  mountPath: {{ include "nodeeni.temporalTlsDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.temporal.apiKey.existingSecret }}
- name: temporal-api-key
  mountPath: {{ include "nodeeni.temporalApiKeyDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Only the listed keys: a key missing from the Secret stops the pod with a clear event. */}}
{{- define "nodeeni.temporalVolumes" -}}
{{- $tls := .Values.temporal.tls }}
{{- if and $tls.enabled $tls.existingSecret }}
- name: temporal-tls
  secret:
    secretName: {{ $tls.existingSecret | quote }}
    items:
{{- range $k := list $tls.secretKeys.ca $tls.secretKeys.cert $tls.secretKeys.key }}
{{- if $k }}
      - key: {{ $k | quote }}
        path: {{ $k | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.temporal.apiKey }}
{{- if .existingSecret }}
- name: temporal-api-key
  secret:
    secretName: {{ .existingSecret | quote }}
    items:
      - key: {{ .key | quote }}
        path: {{ .key | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The restricted Pod Security Standard, as in the kustomize base. */}}
{{- define "nodeeni.restrictedPodSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile: { type: RuntimeDefault }
{{- end }}
{{- define "nodeeni.restrictedContainerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: { drop: ["ALL"] }
{{- end }}

{{/* nodeSelector, tolerations, affinity of a pod spec; `.` is a component's values. */}}
{{- define "nodeeni.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
