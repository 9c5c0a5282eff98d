"""What the real z2jh 4.4.0 chart's jupyterhub_config.py makes of the values ours depend on (these tests were
written against an emulation of the chart, which is gone: the chart itself runs now, tests/deploy/hub.py)."""

from __future__ import annotations

import pytest
from traitlets.config import LazyConfigValue

from .hub import configure

USER_TOLERATION = {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}


def config(values: dict):
    return configure("chart-only", values=values, secrets={}).config


def resolved(value, initial=()):
    """A config value as the trait will see it (list methods on a Config give a LazyConfigValue)."""
    return value.get_value(list(initial)) if isinstance(value, LazyConfigValue) else value


def test_defaults_give_the_charts_user_pod_settings():
    c = config({})
    assert USER_TOLERATION in c.KubeSpawner.tolerations
    assert resolved(c.KubeSpawner.node_affinity_preferred) == [{"weight": 100, "preference": {"matchExpressions": [
        {"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}]}}]
    (block,) = resolved(c.KubeSpawner.init_containers)
    assert block.name == "block-cloud-metadata" and block.security_context.privileged is True
    assert c.KubeSpawner.uid == 1000 and c.KubeSpawner.fs_gid == 100
    assert c.KubeSpawner.scheduler_name == "jupyterhub-user-scheduler"  # named after the release
    assert c.KubeSpawner.image == "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0"
    # dynamic storage by default
    assert c.KubeSpawner.storage_pvc_ensure is True and c.KubeSpawner.storage_capacity == "10Gi"


def test_require_node_purpose_and_no_metadata_block():
    c = config({"scheduling": {"userPods": {"nodeAffinity": {"matchNodePurpose": "require"}}},
                "singleuser": {"cloudMetadata": {"blockWithIptables": False}, "storage": {"type": "none"}}})
    assert resolved(c.KubeSpawner.node_affinity_required) == [{"matchExpressions": [
        {"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}]}]
    assert not resolved(c.KubeSpawner.init_containers)
    assert not resolved(c.KubeSpawner.volumes) and not resolved(c.KubeSpawner.volume_mounts)


def test_hub_config_replaces_a_chart_derived_trait_shallowly():
    """Why the values never put tolerations or volumes under hub.config: the section update replaces them."""
    c = config({"hub": {"config": {"KubeSpawner": {"tolerations": [{"key": "x", "operator": "Exists"}]}}}})
    assert c.KubeSpawner.tolerations == [{"key": "x", "operator": "Exists"}]


def test_extra_config_runs_in_key_order_after_hub_config():
    c = config({"hub": {"config": {"JupyterHub": {"order": ["config"]}},
                        "extraConfig": {"b": "c.JupyterHub.order.append('b')",
                                        "a": "c.JupyterHub.order.append('a')"}}})
    assert c.JupyterHub.order == ["config", "a", "b"]


async def test_dict_form_extra_volumes_reach_kubespawner_as_dicts_and_need_their_own_names():
    """The chart passes the dict form through, and KubeSpawner 7 uses the keys only to order the entries: each
    value names its volume itself (the emulation this file was written against named them after the keys)."""
    from kubespawner import KubeSpawner

    c = config({"singleuser": {"storage": {"type": "none",
                                           "extraVolumes": {"data": {"name": "data", "emptyDir": {}}},
                                           "extraVolumeMounts": {"data": {"name": "data", "mountPath": "/data"}}}}})
    assert resolved(c.KubeSpawner.volumes) == {"data": {"name": "data", "emptyDir": {}}}
    pod = await KubeSpawner(config=c, _mock=True).get_pod_manifest()
    assert [(v.name, v.empty_dir is not None) for v in pod.spec.volumes] == [("data", True)]
    assert [(m.name, m.mount_path) for m in pod.spec.containers[0].volume_mounts] == [("data", "/data")]
    unnamed = config({"singleuser": {"storage": {"type": "none", "extraVolumes": {"data": {"emptyDir": {}}}}}})
    with pytest.raises(ValueError, match="`name`"):
        await KubeSpawner(config=unnamed, _mock=True).get_pod_manifest()


def test_the_metadata_block_is_the_charts_command_for_the_configured_address():
    c = config({"singleuser": {"cloudMetadata": {"blockWithIptables": True, "ip": "169.254.170.2"}}})
    (block,) = resolved(c.KubeSpawner.init_containers)
    assert block.command == ["iptables", "--append", "OUTPUT", "--protocol", "tcp", "--destination",
                             "169.254.170.2", "--destination-port", "80", "--jump", "DROP"]
    assert block.image == "quay.io/jupyterhub/k8s-network-tools:4.4.0"
    assert block.security_context.run_as_user == 0 and block.security_context.capabilities.add == ["NET_ADMIN"]


def test_common_labels_and_the_culler_role_are_the_4x_ones():
    c = config({"cull": {"enabled": True, "users": True}})
    assert c.KubeSpawner.common_labels == {
        "app.kubernetes.io/name": "jupyterhub", "app": "jupyterhub", "app.kubernetes.io/instance": "jupyterhub",
        "release": "jupyterhub", "helm.sh/chart": "jupyterhub-4.4.0", "chart": "jupyterhub-4.4.0",
        "app.kubernetes.io/managed-by": "kubespawner"}
    (culler,) = c.JupyterHub.services
    assert "--cull-users" in culler["command"] and "--url=http://localhost:8081/hub/api" in culler["command"]
    (role,) = c.JupyterHub.load_roles
    assert role["services"] == ["jupyterhub-idle-culler"] and "admin:users" in role["scopes"]


async def test_default_dynamic_storage_mounts_the_claim_kubespawner_makes():
    """4.4.0 leaves pvcNameTemplate null (KubeSpawner's default) and mounts ``{pvc_name}``."""
    from kubespawner import KubeSpawner

    spawner = KubeSpawner(config=config({}), _mock=True)
    pod = spawner.api.api_client.sanitize_for_serialization(await spawner.get_pod_manifest())
    pvc = spawner.get_pvc_manifest()
    (volume,) = [v for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"]["claimName"] == pvc.metadata.name
    assert pvc.metadata.name.startswith("claim-")
    assert pvc.spec.resources.requests == {"storage": "10Gi"}
