{{/*
Chart name, truncated to 63 characters because some Kubernetes name fields are limited to this (by the DNS
naming spec).
*/}}
{{- define "thrifty.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: `<release>-<chart>`, or the release name when it already contains the chart name; 63 characters at
most.
*/}}
{{- define "thrifty.fullname" -}}
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

{{/*
Namespace of the namespaced objects.
*/}}
{{- define "thrifty.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Chart name and version, as the helm.sh/chart label.
*/}}
{{- define "thrifty.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable for the release's lifetime, so never the chart version.
*/}}
{{- define "thrifty.selectorLabels" -}}
app.kubernetes.io/name: {{ include "thrifty.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "thrifty.labels" -}}
helm.sh/chart: {{ include "thrifty.chart" . }}
app.kubernetes.io/name: {{ include "thrifty.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: thrifty
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "thrifty.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "thrifty.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}; the tag defaults to the chart's appVersion.
Call with (dict "image" .Values.image "context" $).
*/}}
{{- define "thrifty.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .context.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/*
A generated manifest from files/ (written by `make crds`) with the chart's labels merged in.
Call with (dict "manifest" $doc "component" "crd" "keep" true "context" $).
*/}}
{{- define "thrifty.generatedManifest" -}}
{{- $doc := .manifest }}
{{- if not (and $doc.apiVersion $doc.kind $doc.metadata) }}
{{- fail "a generated manifest in files/ is empty or malformed: run `make crds`" }}
{{- end }}
{{- $labels := include "thrifty.labels" .context | fromYaml }}
{{- $_ := set $labels "app.kubernetes.io/component" .component }}
{{- $_ = set $doc.metadata "labels" (merge $labels (default (dict) $doc.metadata.labels)) }}
{{- if .keep }}
{{- $annotations := default (dict) $doc.metadata.annotations }}
{{- $_ = set $annotations "helm.sh/resource-policy" "keep" }}
{{- $_ = set $doc.metadata "annotations" $annotations }}
{{- end }}
{{- toYaml $doc }}
{{- end }}

{{/*
Name of the pool catalogue ConfigMap: the full name cut to leave room for the suffix.
*/}}
{{- define "thrifty.poolsConfigMapName" -}}
{{- printf "%s-pools" (include "thrifty.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}
