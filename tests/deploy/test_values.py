"""The z2jh values files: schema-valid in every combination, one extraConfig entry, no secret in plain text,
and each overlay doing what it promises (access mode, TLS, login from a Secret)."""

from __future__ import annotations

import copy
import re

import jsonschema
import pytest
import yaml

from jupyterhub_ext.profiles import builtin_catalog_path

from . import z2jh_chart
from .z2jh_chart import COMBINATIONS, HELM, merged_values, user_values, validate

EXTRA_CONFIG = "import jupyterhub_ext.z2jh\njupyterhub_ext.z2jh.setup(c)\n"


@pytest.fixture(scope="module", params=list(COMBINATIONS))
def combination(request):
    return request.param, merged_values(COMBINATIONS[request.param])


def test_every_combination_validates_against_the_chart_schema(combination):
    name, values = combination
    validate(values)


@pytest.mark.parametrize("path, bad_key", [
    (("singleuser",), "cloudMetdata"),             # a typo of cloudMetadata
    (("hub",), "extraConfg"),
    ((), "singleusr"),
    (("hub", "config"), "profilesKubeSpawner"),    # section names must start with a capital letter
    (("singleuser", "storage"), "homeMountPth"),
    (("scheduling", "userPods", "nodeAffinity"), "matchNodePurpos"),
])
def test_a_misspelled_key_fails_the_schema(path, bad_key):
    values = merged_values(COMBINATIONS["base"])
    node = values
    for key in path:
        node = node[key]
    node[bad_key] = {}
    with pytest.raises(jsonschema.ValidationError, match=re.escape(bad_key)):
        validate(values)


def test_a_wrong_value_fails_the_schema():
    values = merged_values(COMBINATIONS["base"])
    values["singleuser"]["storage"]["type"] = "efs"  # not one of dynamic, static, none
    with pytest.raises(jsonschema.ValidationError):
        validate(values)


def test_merging_follows_helm():
    """null removes a key together with the chart's default; maps merge; lists and scalars replace."""
    values = merged_values({"hub": {"db": {"pvc": {"storageClassName": None}}, "nodeSelector": {"a": "b"}},
                            "scheduling": {"userPods": {"tolerations": []}}})
    assert "storageClassName" not in values["hub"]["db"]["pvc"]
    assert values["hub"]["db"]["pvc"]["storage"] == "1Gi"  # sibling default kept
    assert values["hub"]["nodeSelector"] == {"a": "b"}
    assert values["scheduling"]["userPods"]["tolerations"] == []
    assert values["scheduling"]["userPods"]["nodeAffinity"] == {"matchNodePurpose": "prefer"}


def test_one_extra_config_entry_that_only_imports_and_wires_the_package(combination):
    name, values = combination
    assert values["hub"]["extraConfig"] == {"zz-jupyterhub-ext": EXTRA_CONFIG}
    # runs after any entry a platform team adds: the chart executes entries in sorted key order
    assert sorted(["00-custom", "mine", "zz-jupyterhub-ext"])[-1] == "zz-jupyterhub-ext"


def test_the_catalog_is_loaded_not_copied():
    for name, files in COMBINATIONS.items():
        spawner_config = merged_values(files)["hub"]["config"]["ProfilesKubeSpawner"]
        if name.startswith("eks") or name == "base":
            assert spawner_config["catalog_file"] == "builtin:eks"
            assert "profiles" not in spawner_config
    with open(builtin_catalog_path("eks")) as f:
        assert yaml.safe_load(f)["profiles"], "the shipped catalog is empty"


SECRET_KEY = re.compile(r"(password|secret|token|^keys$|api_?key|private_?key|cookie)", re.I)


def _scalars(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _scalars(v, (*path, str(k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _scalars(v, (*path, str(i)))
    else:
        yield path, node


@pytest.mark.parametrize("name", ["values.yaml", "values-eks-cognito.yaml", "values-eks-keycloak.yaml",
                                  "values-aks-classroom.yaml"])
def test_no_secret_in_plain_text(name):
    """Passwords and client secrets come from Kubernetes Secrets (valueFrom), never from a values file."""
    values = yaml.safe_load((HELM / name).read_text())
    offenders = []
    for path, value in _scalars(values):
        # secretKeyRef names and keys are references, not secrets
        if "secretKeyRef" in path or "annotations" in path:
            continue
        leaf = next(p for p in reversed(path) if not p.isdigit())
        if SECRET_KEY.search(leaf) and value not in (None, "", False, True):
            offenders.append(".".join(path))
    assert not offenders, f"{name}: secret-looking values in plain text: {offenders}"


def _env(values: dict, name: str) -> dict:
    return values["hub"]["extraEnv"][name]


def test_base_is_private_and_reached_by_port_forward():
    values = merged_values(COMBINATIONS["base"])
    assert values["proxy"]["service"]["type"] == "ClusterIP"
    assert values["ingress"]["enabled"] is False
    assert values["proxy"]["https"]["enabled"] is False
    # the login works from a Secret that the docs tell the operator to create
    ref = _env(values, "JUPYTERHUB_SHARED_PASSWORD")["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "jupyterhub-ext-login"


@pytest.mark.parametrize("name", ["eks-cognito", "eks-keycloak"])
def test_oauth_overlays_use_tls_and_a_client_secret_from_a_secret(name):
    values = merged_values(COMBINATIONS[name])
    section = {"eks-cognito": "CognitoAuthenticator", "eks-keycloak": "KeycloakAuthenticator"}[name]
    auth = values["hub"]["config"][section]
    assert values["hub"]["config"]["JupyterHub"]["authenticator_class"] == name.split("-")[1]
    assert "client_secret" not in auth
    assert _env(values, "OAUTH_CLIENT_SECRET")["valueFrom"]["secretKeyRef"]["name"] == "jupyterhub-ext-oauth"
    assert auth["oauth_callback_url"].startswith("https://")
    assert auth["enable_auth_state"] is True
    if name == "eks-cognito":  # NLB + ACM, TLS offloaded to the load balancer, no plain-HTTP listener
        annotations = values["proxy"]["service"]["annotations"]
        assert values["proxy"]["service"]["type"] == "LoadBalancer"
        assert annotations["service.beta.kubernetes.io/aws-load-balancer-ssl-cert"].startswith("arn:aws:acm:")
        assert annotations["service.beta.kubernetes.io/aws-load-balancer-ssl-ports"] == "https"
        assert values["proxy"]["https"] == {**values["proxy"]["https"], "enabled": True, "type": "offload"}
        assert values["proxy"]["service"]["disableHttpPort"] is True
    else:  # ALB Ingress with the ACM certificate; HTTP redirected to HTTPS
        ingress = values["ingress"]
        assert ingress["enabled"] and ingress["ingressClassName"] == "alb"
        assert ingress["annotations"]["alb.ingress.kubernetes.io/certificate-arn"].startswith("arn:aws:acm:")
        assert ingress["annotations"]["alb.ingress.kubernetes.io/ssl-redirect"] == "443"
        assert values["proxy"]["service"]["type"] == "ClusterIP"
        host = ingress["hosts"][0]
        assert auth["oauth_callback_url"] == f"https://{host}/hub/oauth_callback"


@pytest.mark.parametrize("name", ["eks-cognito", "eks-keycloak"])
def test_every_group_the_catalog_names_can_log_in(name):
    """A catalog profile (or a shared-folder right) for group G is useless if members of G are refused at login."""
    values = merged_values(COMBINATIONS[name])
    section = {"eks-cognito": "CognitoAuthenticator", "eks-keycloak": "KeycloakAuthenticator"}[name]
    auth = values["hub"]["config"][section]
    admitted = set(auth["allowed_groups"]) | set(auth.get("admin_groups", []))
    with open(builtin_catalog_path("eks")) as f:
        catalog = yaml.safe_load(f)["profiles"]
    named = set()
    for profile in catalog:
        named |= set((profile.get("access") or {}).get("groups", []))
        for option in profile.get("options", []):
            for choice in option.get("choices", []):
                named |= set((choice.get("access") or {}).get("groups", []))
    spawner = values["hub"]["config"]["ProfilesKubeSpawner"]
    named |= set(spawner.get("shared_write_groups", [])) | set(spawner.get("shared_group_dirs", []))
    assert named and named <= admitted, f"groups given rights but refused at login: {named - admitted}"


def test_aks_classroom():
    values = merged_values(COMBINATIONS["aks-classroom"])
    config = values["hub"]["config"]
    service = values["proxy"]["service"]
    # public LoadBalancer with an Azure DNS label, and Let's Encrypt for exactly that host name
    assert service["type"] == "LoadBalancer"
    label = service["annotations"]["service.beta.kubernetes.io/azure-dns-label-name"]
    assert re.fullmatch(r"[a-z][a-z0-9-]{1,61}[a-z0-9]", label)
    https = values["proxy"]["https"]
    assert https["enabled"] and https["type"] == "letsencrypt" and https["letsencrypt"]["contactEmail"]
    (host,) = https["hosts"]
    assert re.fullmatch(rf"{re.escape(label)}\.[a-z0-9]+\.cloudapp\.azure\.com", host)
    # class list and passwords from a required Secret
    assert config["JupyterHub"]["authenticator_class"] == \
        "jupyterhub_ext.auth.shared.ClassroomSharedPasswordAuthenticator"
    auth = config["ClassroomSharedPasswordAuthenticator"]
    assert set(auth["admin_users"]) <= set(auth["allowed_users"])
    for var, key in (("JUPYTERHUB_SHARED_PASSWORD", "user-password"),
                     ("JUPYTERHUB_SHARED_ADMIN_PASSWORD", "admin-password")):
        ref = _env(values, var)["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "jupyterhub-ext-login", "key": key, "optional": False}
    # a 1 GiB disk per student, no EFS, no EKS-only storage class, no Karpenter catalog
    spawner = config["ProfilesKubeSpawner"]
    assert (spawner["home_mode"], spawner["home_pvc_size"], spawner["shared_pvc"]) == ("pvc", "1Gi", "")
    assert values["singleuser"]["storage"]["type"] == "none"
    assert "storageClassName" not in values["hub"]["db"]["pvc"]
    assert spawner["catalog_file"] == "" and len(spawner["profiles"]) == 1
    assert "node_pool" not in spawner["profiles"][0]["hardware"]
    # the course image, kept pulled on every node (the one profile runs it)
    assert values["singleuser"]["image"]["name"].endswith("jupyterhub-ext-singleuser")
    assert values["prePuller"]["continuous"]["enabled"] is True


@pytest.mark.parametrize("name", list(COMBINATIONS))
def test_user_pods_are_hardened_in_values(name):
    values = merged_values(COMBINATIONS[name])
    single = values["singleuser"]
    assert single["uid"] == 1000 and single["fsGid"] == 100
    assert single["allowPrivilegeEscalation"] is False
    assert single["cloudMetadata"]["blockWithIptables"] is True
    assert "GRANT_SUDO" not in (single.get("extraEnv") or {})
    assert single["networkPolicy"]["enabled"] is True
    assert values["cull"]["enabled"] is True and values["cull"]["timeout"] <= 3600
    assert values["scheduling"]["userScheduler"]["enabled"] is True
    assert values["hub"]["image"]["name"].endswith("jupyterhub-ext-hub")


def test_user_values_only_name_keys_the_chart_knows():
    """Belt and braces for nested keys the schema leaves open: every key we set exists in the chart's
    values.yaml or is a free-form map (annotations, config sections, env)."""
    chart = z2jh_chart.load_yaml(z2jh_chart.Z2JH / "values.yaml")
    free = {"config", "extraEnv", "extraConfig", "annotations", "extraAnnotations", "labels", "extraLabels",
            "letsencrypt", "nodeSelector"}
    for name, files in COMBINATIONS.items():
        for path, _ in _scalars(user_values(files)):
            node = chart
            for key in path:
                if key in free or not isinstance(node, dict):
                    break
                assert key in node, f"{name}: {'.'.join(path)} is not a key of the z2jh 4.4.0 chart"
                node = node[key]
