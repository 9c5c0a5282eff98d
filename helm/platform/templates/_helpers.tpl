{{/* Labels on every object this chart makes. */}}
{{- define "platform.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* Cluster-scoped PersistentVolumes need names unique in the cluster: prefix the release namespace. */}}
{{- define "platform.pvName" -}}
{{- printf "%s-%s" .root.Release.Namespace .name | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* Karpenter objects are cluster-scoped too; the pools keep the bare name (the catalog selects on it). */}}
{{- define "platform.nodeClassName" -}}
{{- printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{- define "platform.efsVolumeHandle" -}}
{{- $fs := required "efs.fileSystemId is required (fs-...): the EFS file system of the homes and shared volumes" .root.Values.efs.fileSystemId -}}
{{- $ap := required (printf "efs.%s.accessPointId is required (fsap-...): without an access point the volume is the whole file system (docs/deploy-eks.md)" .what) .accessPointId -}}
{{- if not (regexMatch "^fs-[0-9a-f]{8,40}$" $fs) }}{{ fail (printf "efs.fileSystemId %q does not look like fs-0123456789abcdef0" $fs) }}{{ end -}}
{{- if not (regexMatch "^fsap-[0-9a-f]{8,40}$" $ap) }}{{ fail (printf "efs.%s.accessPointId %q does not look like fsap-0123456789abcdef0" .what $ap) }}{{ end -}}
{{- printf "%s::%s" $fs $ap -}}
{{- end }}
