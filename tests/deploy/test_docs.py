"""The deployment docs stay true: their files exist, their example values work, their Secrets are the ones the
values read, their NodePool table is the chart's."""

from __future__ import annotations

import re

import pytest
import yaml

from .conftest import PLATFORM, run_helm
from .z2jh_chart import COMBINATIONS, NAMESPACE, ROOT, merge_maps, merged_values, user_values, validate

EKS_DOC = ROOT / "docs" / "deploy-eks.md"
AKS_DOC = ROOT / "docs" / "deploy-aks.md"


def yaml_block(doc, first_line: str) -> dict:
    """The ```yaml block of ``doc`` whose first line is ``first_line`` (or that follows a paragraph ending in it)."""
    for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S):
        if block.startswith(first_line) or first_line in block.split("\n", 1)[0]:
            return yaml.safe_load(block)
    raise AssertionError(f"{doc.name}: no yaml block starting with {first_line!r}")


@pytest.mark.parametrize("doc", [EKS_DOC, AKS_DOC], ids=["eks", "aks"])
def test_every_file_the_docs_pass_to_helm_or_docker_exists(doc):
    text = doc.read_text()
    paths = set(re.findall(r"(?:-f|--values)\s+((?:helm|images)/[\w./-]+)", text))
    paths |= set(re.findall(r"helm upgrade --install \w+ ((?:helm)/[\w/-]+)", text))
    assert paths, doc.name
    for path in paths:
        assert (ROOT / path).exists(), f"{doc.name} refers to {path}, which does not exist"
    assert set(re.findall(r"jupyterhub/jupyterhub --version (\S+)", text)) == {"4.4.0"}


@pytest.mark.parametrize("doc", [EKS_DOC, AKS_DOC], ids=["eks", "aks"])
def test_the_secrets_the_docs_create_are_the_ones_the_values_read(doc):
    text = doc.read_text()
    created = {}
    # each `kubectl create secret generic NAME -n jupyterhub ...` command, with its continuation lines
    for name, command in re.findall(r"kubectl create secret generic ([\w-]+) -n jupyterhub((?:[^\n]*\\\n)*[^\n]*)",
                                    text):
        created.setdefault(name, set()).update(re.findall(r"--from-literal=([\w-]+)=", command))
    combos = ["aks-classroom"] if doc is AKS_DOC else ["base", "eks-cognito", "eks-keycloak"]
    for combo in combos:
        for var, spec in merged_values(COMBINATIONS[combo])["hub"]["extraEnv"].items():
            ref = spec["valueFrom"]["secretKeyRef"]
            assert ref["key"] in created.get(ref["name"], set()), \
                f"{doc.name}: {combo} reads {ref['name']}/{ref['key']} ({var}), the doc never creates it"


def test_the_eks_doc_platform_example_renders(helm, tmp_path):
    example = tmp_path / "platform.yaml"
    example.write_text(yaml.safe_dump(yaml_block(EKS_DOC, "# platform.yaml")))
    proc = run_helm(helm, "template", "platform", str(PLATFORM), "-n", NAMESPACE, "-f", str(example))
    pools = {d["metadata"]["name"] for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "NodePool"}
    table = set(re.findall(r"^\s*\| `([\w-]+)` \| [^|]*(?:on-demand|g5|p4d|trn1|inf2)", EKS_DOC.read_text(), re.M))
    assert pools == table == {"cpu", "gpu-ts", "gpu-mig", "gpu", "trainium", "inferentia"}


@pytest.mark.parametrize("combo", ["base", "eks-cognito", "eks-keycloak"])
def test_the_eks_doc_image_values_validate(combo):
    mine = yaml_block(EKS_DOC, "hub:\n  image:")
    validate(merged_values(merge_maps(user_values(COMBINATIONS[combo]), mine)))


def test_the_aks_doc_class_values_validate_and_keep_the_https_host_consistent():
    mine = yaml_block(AKS_DOC, "hub:\n  image:")
    values = merged_values(merge_maps(user_values(COMBINATIONS["aks-classroom"]), mine))
    validate(values)
    label = values["proxy"]["service"]["annotations"]["service.beta.kubernetes.io/azure-dns-label-name"]
    (host,) = values["proxy"]["https"]["hosts"]
    assert re.fullmatch(rf"{re.escape(label)}\.[a-z0-9]+\.cloudapp\.azure\.com", host)
    auth = values["hub"]["config"]["ClassroomSharedPasswordAuthenticator"]
    assert set(auth["admin_users"]) <= set(auth["allowed_users"])
