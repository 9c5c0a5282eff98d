"""The API types the emulator serves: paths, field selectors, defaulting and validation.

Defaulting and validation follow the apiserver closely where code under test can trip over it (names, labels,
resource requests and limits, volume mounts, tolerations) and are deliberately absent elsewhere.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping

from .quantity import QuantityError, parse_quantity
from .selectors import label_key_errors, label_value_errors


def _path(obj: Mapping, *keys: str):
    cur = obj
    for k in keys:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(k)
    return cur


def _getter(*keys: str) -> Callable[[Mapping], object]:
    return lambda obj: _path(obj, *keys)


COMMON_FIELDS = {"metadata.name": _getter("metadata", "name"), "metadata.namespace": _getter("metadata", "namespace")}


@dataclass(frozen=True)
class ResourceType:
    plural: str
    kind: str
    namespaced: bool
    group: str = ""
    version: str = "v1"
    status_subresource: bool = False
    fields: Mapping[str, Callable[[Mapping], object]] = field(default_factory=dict)
    name_rule: str = "subdomain"  # or "label"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def field_getters(self) -> dict:
        return {**COMMON_FIELDS, **self.fields}


_POD_FIELDS = {
    "spec.nodeName": _getter("spec", "nodeName"),
    "spec.restartPolicy": _getter("spec", "restartPolicy"),
    "spec.schedulerName": _getter("spec", "schedulerName"),
    "spec.serviceAccountName": _getter("spec", "serviceAccountName"),
    "spec.hostNetwork": lambda o: str(bool(_path(o, "spec", "hostNetwork"))).lower(),
    "status.phase": _getter("status", "phase"),
    "status.podIP": _getter("status", "podIP"),
    "status.nominatedNodeName": _getter("status", "nominatedNodeName"),
}
_EVENT_FIELDS = {
    **{f"involvedObject.{k}": _getter("involvedObject", k)
       for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
    "reason": _getter("reason"), "reportingComponent": _getter("reportingComponent"),
    "source": _getter("source", "component"), "type": _getter("type"),
}

TYPES = {t.plural: t for t in [
    ResourceType("namespaces", "Namespace", False, status_subresource=True, name_rule="label",
                 fields={"status.phase": _getter("status", "phase")}),
    ResourceType("nodes", "Node", False, status_subresource=True,
                 fields={"spec.unschedulable": lambda o: str(bool(_path(o, "spec", "unschedulable"))).lower()}),
    ResourceType("persistentvolumes", "PersistentVolume", False, status_subresource=True),
    ResourceType("pods", "Pod", True, status_subresource=True, fields=_POD_FIELDS),
    ResourceType("persistentvolumeclaims", "PersistentVolumeClaim", True, status_subresource=True),
    ResourceType("secrets", "Secret", True, fields={"type": _getter("type")}),
    ResourceType("configmaps", "ConfigMap", True),
    ResourceType("services", "Service", True, status_subresource=True, name_rule="label"),
    ResourceType("serviceaccounts", "ServiceAccount", True),
    ResourceType("events", "Event", True, fields=_EVENT_FIELDS),
    ResourceType("storageclasses", "StorageClass", False, group="storage.k8s.io"),
]}
BY_GROUP = {(t.group, t.plural): t for t in TYPES.values()}


# --- errors -------------------------------------------------------------------------------------------------------

class ApiError(Exception):
    """An error the apiserver returns as a ``Status`` object."""

    REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
               409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid",
               429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}

    def __init__(self, code: int, message: str, reason: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or self.REASONS.get(code, "Unknown")
        self.details = details

    def status(self) -> dict:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, f'{rt.plural}{"." + rt.group if rt.group else ""} "{name}" not found',
                    details={"name": name, "group": rt.group, "kind": rt.plural})


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, f'{rt.plural} "{name}" already exists', "AlreadyExists",
                    {"name": name, "group": rt.group, "kind": rt.plural})


def conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, f'Operation cannot be fulfilled on {rt.plural} "{name}": the object has been modified; '
                         "please apply your changes to the latest version and try again", "Conflict",
                    {"name": name, "group": rt.group, "kind": rt.plural})


class FieldErrors:
    """Collects field.ErrorList entries and renders them as the apiserver does."""

    def __init__(self):
        self.items: list[tuple[str, str, str]] = []  # (field, type, detail)

    def required(self, path: str, detail: str = ""):
        self.items.append((path, "FieldValueRequired", f"Required value{': ' + detail if detail else ''}"))

    def invalid(self, path: str, value, detail: str):
        shown = f'"{value}"' if isinstance(value, str) else str(value)
        self.items.append((path, "FieldValueInvalid", f"Invalid value: {shown}: {detail}"))

    def duplicate(self, path: str, value):
        self.items.append((path, "FieldValueDuplicate", f'Duplicate value: "{value}"'))

    def not_supported(self, path: str, value, allowed):
        allowed = ", ".join(f'"{a}"' for a in allowed)
        self.items.append((path, "FieldValueNotSupported", f'Unsupported value: "{value}": supported values: {allowed}'))

    def not_found(self, path: str, value):
        self.items.append((path, "FieldValueNotFound", f'Not found: "{value}"'))

    def forbidden(self, path: str, detail: str):
        self.items.append((path, "FieldValueForbidden", f"Forbidden: {detail}"))

    def raise_if_any(self, rt: ResourceType, name: str):
        if not self.items:
            return
        parts = [f"{f}: {d}" for f, _, d in self.items]
        summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
        raise ApiError(422, f'{rt.kind} "{name}" is invalid: {summary}', "Invalid", {
            "name": name, "group": rt.group, "kind": rt.kind,
            "causes": [{"reason": t, "message": d, "field": f} for f, t, d in self.items]})


_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
                 "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation "
                 "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
             "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
SERVICE_NAME_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
                    "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")


def validate_name(rt: ResourceType, name: str, errs: FieldErrors) -> None:
    if rt.kind == "Event":
        return  # events are named <object>.<hex>, never user input
    if rt.name_rule == "label":
        if rt.kind == "Service":
            if len(name) > 63 or not re.match(r"^[a-z]([-a-z0-9]*[a-z0-9])?$", name):
                errs.invalid("metadata.name", name, SERVICE_NAME_MSG)
        elif len(name) > 63 or not _LABEL.match(name):
            errs.invalid("metadata.name", name, LABEL_MSG)
    elif len(name) > 253 or not _SUBDOMAIN.match(name):
        errs.invalid("metadata.name", name, SUBDOMAIN_MSG)


def validate_metadata(meta: Mapping, errs: FieldErrors) -> None:
    for key, value in (meta.get("labels") or {}).items():
        for e in label_key_errors(key):
            errs.invalid("metadata.labels", key, e)
        if not isinstance(value, str):
            errs.invalid(f"metadata.labels", value, "label values must be strings")
            continue
        for e in label_value_errors(value):
            errs.invalid("metadata.labels", value, e)
    for key in (meta.get("annotations") or {}):
        for e in label_key_errors(key):
            errs.invalid("metadata.annotations", key, e)


# --- resources of containers ----------------------------------------------------------------------------------------

STANDARD_RESOURCES = {"cpu", "memory", "ephemeral-storage", "storage", "pods"}


def is_extended_resource(name: str) -> bool:
    """Not overcommittable: requests must equal limits (nvidia.com/gpu, aws.amazon.com/neuron, hugepages...)."""
    return name not in STANDARD_RESOURCES and ("/" in name and not name.startswith("kubernetes.io/")
                                               or name.startswith("hugepages-"))


def default_container_resources(container: dict) -> None:
    """Requests default to limits for every resource with a limit and no request (apiserver defaulting)."""
    res = container.get("resources")
    if not isinstance(res, dict):
        return
    limits = res.get("limits") or {}
    if limits:
        requests = res.setdefault("requests", {})
        for k, v in limits.items():
            requests.setdefault(k, v)


def validate_resources(res: Mapping | None, path: str, errs: FieldErrors) -> None:
    if not res:
        return
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    parsed = {}
    for which, values in (("limits", limits), ("requests", requests)):
        for name, value in values.items():
            p = f"{path}.{which}[{name}]"
            try:
                q = parse_quantity(value)
            except QuantityError as e:
                errs.invalid(p, value, str(e))
                continue
            if q < 0:
                errs.invalid(p, value, "must be greater than or equal to 0")
            if is_extended_resource(name) and q.denominator != 1:
                errs.invalid(p, value, "must be an integer")
            parsed[(which, name)] = q
    for name, value in requests.items():
        q, lim = parsed.get(("requests", name)), parsed.get(("limits", name))
        if q is None:
            continue
        if lim is not None:
            if is_extended_resource(name) and q != lim:
                errs.invalid(f"{path}.requests[{name}]", value, f"must be equal to {name} limit of {limits[name]}")
            elif q > lim:
                errs.invalid(f"{path}.requests[{name}]", value,
                             f"must be less than or equal to {name} limit of {limits[name]}")
        elif is_extended_resource(name):
            errs.required(f"{path}.limits", "Limit must be set for non overcommitable resources")


# --- pods -------------------------------------------------------------------------------------------------------------

def _image_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def default_pod(pod: dict) -> None:
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    # DefaultTolerationSeconds admission plugin
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key and t.get("effect") in (None, "NoExecute") for t in tolerations) and \
                not any(not t.get("key") and t.get("operator") == "Exists" for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    for t in tolerations:
        if t.get("operator") is None:
            t["operator"] = "Equal"
    for kind in ("initContainers", "containers"):
        for c in spec.get(kind) or []:
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            if c.get("image"):
                c.setdefault("imagePullPolicy", _image_pull_policy(c["image"]))
            c.setdefault("resources", {})
            default_container_resources(c)
            for port in c.get("ports") or []:
                port.setdefault("protocol", "TCP")
    for v in spec.get("volumes") or []:
        if "emptyDir" in v and v["emptyDir"] is None:
            v["emptyDir"] = {}
        for src in ("secret", "configMap"):
            if src in v:
                v[src].setdefault("defaultMode", 0o644)
        if isinstance(v.get("image"), dict) and v["image"].get("reference"):
            v["image"].setdefault("pullPolicy", _image_pull_policy(v["image"]["reference"]))
    status = pod.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", qos_class(spec))


def qos_class(spec: Mapping) -> str:
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    any_set, guaranteed = False, True
    for c in containers:
        res = c.get("resources") or {}
        lim, req = res.get("limits") or {}, res.get("requests") or {}
        if lim or req:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and parse_quantity(req[r]) != parse_quantity(lim[r])):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


_TOLERATION_OPS = ("Equal", "Exists")
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


# Volume sources the kubelet (tests/harness/kubelet.py) knows how to provide; anything else is refused here.
VOLUME_SOURCES = ("persistentVolumeClaim", "emptyDir", "secret", "configMap", "hostPath", "nfs", "csi", "projected",
                  "downwardAPI", "image")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")


def _validate_volume_source(v: Mapping, p: str, errs: FieldErrors, feature_gates: frozenset[str]) -> None:
    given = [k for k in v if k != "name"]
    if "image" in given and "ImageVolume" not in feature_gates:
        # an API server with the gate off drops the field it does not serve, and the volume is left with none
        given.remove("image")
    if not given:
        errs.required(p, "must specify a volume type")
    elif len(given) > 1:
        errs.forbidden(f"{p}.{given[1]}", "may not specify more than 1 volume type")
    elif given[0] not in VOLUME_SOURCES:
        errs.not_supported(p, given[0], VOLUME_SOURCES)
    elif given[0] == "image":
        image = v["image"] or {}
        if not image.get("reference"):
            errs.required(f"{p}.image.reference")
        if image.get("pullPolicy") is not None and image["pullPolicy"] not in PULL_POLICIES:
            errs.not_supported(f"{p}.image.pullPolicy", image["pullPolicy"], PULL_POLICIES)


def validate_pod(pod: Mapping, errs: FieldErrors, feature_gates: frozenset[str] = frozenset()) -> None:
    spec = pod.get("spec") or {}
    volumes = spec.get("volumes") or []
    vol_names = set()
    for i, v in enumerate(volumes):
        name = v.get("name")
        if not name:
            errs.required(f"spec.volumes[{i}].name")
        elif name in vol_names:
            errs.duplicate(f"spec.volumes[{i}].name", name)
        vol_names.add(name)
        _validate_volume_source(v, f"spec.volumes[{i}]", errs, feature_gates)
        if "persistentVolumeClaim" in v and not (v["persistentVolumeClaim"] or {}).get("claimName"):
            errs.required(f"spec.volumes[{i}].persistentVolumeClaim.claimName")
    containers = spec.get("containers")
    if not containers:
        errs.required("spec.containers")
    names = set()
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(kind) or []):
            p = f"spec.{kind}[{i}]"
            name = c.get("name")
            if not name:
                errs.required(f"{p}.name")
            elif not _LABEL.match(name) or len(name) > 63:
                errs.invalid(f"{p}.name", name, LABEL_MSG)
            elif name in names:
                errs.duplicate(f"{p}.name", name)
            names.add(name)
            if not c.get("image"):
                errs.required(f"{p}.image")
            validate_resources(c.get("resources"), f"{p}.resources", errs)
            mounts = set()
            for j, m in enumerate(c.get("volumeMounts") or []):
                mp = f"{p}.volumeMounts[{j}]"
                if m.get("name") not in vol_names:
                    errs.not_found(f"{mp}.name", m.get("name"))
                path = m.get("mountPath")
                if not path:
                    errs.required(f"{mp}.mountPath")
                elif path in mounts:
                    errs.invalid(f"{mp}.mountPath", path, "must be unique")
                mounts.add(path)
                sub = m.get("subPath") or ""
                if sub.startswith("/"):
                    errs.invalid(f"{mp}.subPath", sub, "must be a relative path")
                if ".." in sub.split("/"):
                    errs.invalid(f"{mp}.subPath", sub, "must not contain '..'")
            for j, e in enumerate(c.get("env") or []):
                if not e.get("name"):
                    errs.required(f"{p}.env[{j}].name")
                elif not _ENV_NAME.match(e["name"]):
                    errs.invalid(f"{p}.env[{j}].name", e["name"],
                                 "a valid environment variable name must consist of alphabetic characters, digits, "
                                 "'_', '-', or '.', and must not start with a digit")
            for j, port in enumerate(c.get("ports") or []):
                cp = port.get("containerPort")
                if not isinstance(cp, int) or not 1 <= cp <= 65535:
                    errs.invalid(f"{p}.ports[{j}].containerPort", cp, "must be between 1 and 65535, inclusive")
    for i, t in enumerate(spec.get("tolerations") or []):
        p = f"spec.tolerations[{i}]"
        op = t.get("operator", "Equal")
        if op not in _TOLERATION_OPS:
            errs.not_supported(f"{p}.operator", op, _TOLERATION_OPS)
        if op == "Exists" and t.get("value"):
            errs.invalid(f"{p}.operator", t.get("value"), "value must be empty when `operator` is 'Exists'")
        if op == "Equal" and not t.get("key"):
            errs.invalid(f"{p}.operator", op, "operator must be Exists when `key` is empty, which means \"match all "
                                              "values and all keys\"")
        if t.get("effect") and t["effect"] not in _EFFECTS:
            errs.not_supported(f"{p}.effect", t["effect"], _EFFECTS)
        if t.get("tolerationSeconds") is not None and t.get("effect") != "NoExecute":
            errs.invalid(f"{p}.effect", t.get("effect"),
                         "effect must be 'NoExecute' when `tolerationSeconds` is set")
    restart = spec.get("restartPolicy")
    if restart not in ("Always", "OnFailure", "Never"):
        errs.not_supported("spec.restartPolicy", restart, ("Always", "OnFailure", "Never"))
    for k, v in (spec.get("nodeSelector") or {}).items():
        for e in label_value_errors(str(v)):
            errs.invalid(f"spec.nodeSelector", v, e)


def pod_update_errors(old: Mapping, new: Mapping, errs: FieldErrors) -> None:
    """Pod specs are immutable except images, activeDeadlineSeconds and added tolerations."""
    a, b = dict(old.get("spec") or {}), dict(new.get("spec") or {})
    for spec in (a, b):
        for kind in ("containers", "initContainers"):
            spec[kind] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get(kind) or []]
        spec.pop("activeDeadlineSeconds", None)
    old_tol, new_tol = a.pop("tolerations", []) or [], b.pop("tolerations", []) or []
    if a.get("nodeName") is None and b.get("nodeName"):
        errs.forbidden("spec.nodeName", "pod updates may not change fields other than ... (use the binding "
                                        "subresource to set spec.nodeName)")
        return
    if a != b or any(t not in new_tol for t in old_tol):
        errs.forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,"
                               "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
                               "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                               "(allow it to be set to 1 if it was previously negative)")


# --- other types --------------------------------------------------------------------------------------------------------

def default_object(rt: ResourceType, obj: dict, default_storage_class: str | None) -> None:
    if rt.kind == "Pod":
        default_pod(obj)
    elif rt.kind == "PersistentVolumeClaim":
        spec = obj.setdefault("spec", {})
        spec.setdefault("volumeMode", "Filesystem")
        if "storageClassName" not in spec and not spec.get("volumeName") and default_storage_class:
            spec["storageClassName"] = default_storage_class
        obj.setdefault("status", {}).setdefault("phase", "Pending")
        obj["metadata"].setdefault("finalizers", [])
        if "kubernetes.io/pvc-protection" not in obj["metadata"]["finalizers"]:
            obj["metadata"]["finalizers"].append("kubernetes.io/pvc-protection")
    elif rt.kind == "PersistentVolume":
        obj.setdefault("spec", {}).setdefault("persistentVolumeReclaimPolicy", "Retain")
        obj["spec"].setdefault("volumeMode", "Filesystem")
        obj.setdefault("status", {}).setdefault("phase", "Available")
    elif rt.kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {})["phase"] = "Active"
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif rt.kind == "Secret":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {}) or {}
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            obj["data"] = data
    elif rt.kind == "Service":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
        obj.setdefault("status", {}).setdefault("loadBalancer", {})
    elif rt.kind == "StorageClass":
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")
    elif rt.kind == "Event":
        obj.setdefault("count", 1)
        obj.setdefault("type", "Normal")


def validate_object(rt: ResourceType, obj: Mapping, errs: FieldErrors,
                    feature_gates: frozenset[str] = frozenset()) -> None:
    validate_metadata(obj.get("metadata") or {}, errs)
    if rt.kind == "Pod":
        validate_pod(obj, errs, feature_gates)
    elif rt.kind == "PersistentVolumeClaim":
        spec = obj.get("spec") or {}
        if not spec.get("accessModes"):
            errs.required("spec.accessModes")
        storage = _path(spec, "resources", "requests", "storage")
        if storage is None:
            errs.required("spec.resources[storage]")
        else:
            validate_resources({"requests": {"storage": storage}}, "spec.resources", errs)
    elif rt.kind == "Secret":
        for k, v in (obj.get("data") or {}).items():
            try:
                base64.b64decode(v, validate=True)
            except Exception:
                errs.invalid(f"data[{k}]", "<secret contents redacted>", "illegal base64 data")
    elif rt.kind == "Service":
        for i, p in enumerate(_path(obj, "spec", "ports") or []):
            if not isinstance(p.get("port"), int):
                errs.required(f"spec.ports[{i}].port")
