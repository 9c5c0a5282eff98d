"""Broken values files, each a mistake an operator makes, and the lines ``jupyterhub-ext check`` must print for it.

A case is an overlay (written to a values file of its own, on top of shipped files under helm/: the base and maybe
an overlay) and the problem lines, in order: ``exact(line)`` or ``key(path, fragment)``, the line being
``<path>: <message>`` with the fragment in the message. Paths are the keys as the values files write them
(``hub.config.ProfilesKubeSpawner...``); messages are the checks' own (tests/catalog/bad_catalogs.py,
tests/storage/test_checks.py, tests/fairuse/test_rules.py and test_culling.py, tests/auth/).

Used by test_check.py (the command line, with the chart and without) and test_hub_agreement.py (a real hub on the
chart's configuration for the same files).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Mapping

BASE = ("values.yaml",)
COGNITO = ("values.yaml", "values-eks-cognito.yaml")
KEYCLOAK = ("values.yaml", "values-eks-keycloak.yaml")
CLASSROOM = ("values.yaml", "values-aks-classroom.yaml")

S = "hub.config.ProfilesKubeSpawner"
P = f"{S}.profiles"
EKS = f"{S}.catalog_file(builtin:eks).profiles"
LIMITS = f"{S}.limits"


@dataclass(frozen=True)
class Line:
    path: str | None             # None: a line naming no key of ours (another package's message)
    fragment: str | None = None  # None: the whole line is given (path holds it)

    def matches(self, line: str) -> bool:
        if self.path is None:
            return self.fragment in line
        if self.fragment is None:
            return line == self.path
        return line.startswith(f"{self.path}: ") and self.fragment in line[len(self.path) + 2:]

    def __str__(self) -> str:
        if self.path is None:
            return f"...{self.fragment}..."
        return self.path if self.fragment is None else f"{self.path}: ...{self.fragment}..."


def exact(line: str) -> Line:
    return Line(line)


def key(path: str, fragment: str) -> Line:
    return Line(path, fragment)


def anywhere(fragment: str) -> Line:
    return Line(None, fragment)


@dataclass(frozen=True)
class Case:
    id: str
    what: str                       # the mistake, in the operator's words
    overlay: Mapping
    lines: tuple[Line, ...]
    shipped: tuple[str, ...] = BASE
    chart_only: bool = False        # needs the chart's own mapping (singleuser.* -> KubeSpawner): --chart only
    hub_starts: bool = False        # the hub starts anyway (no setup(c), no checks): what only check can say

    @property
    def several(self) -> bool:
        return len(self.lines) > 1


def config(**sections) -> dict:
    return {"hub": {"config": sections}}


def spawner(**settings) -> dict:
    return config(ProfilesKubeSpawner=settings)


# -- an inline catalog (catalog_file "" and profiles, as the classroom overlay writes it) ------------------------

CPU = {"slug": "cpu", "display_name": "CPU", "default": True,
       "hardware": {"kind": "cpu", "cpu": {"guarantee": 1, "limit": 2}, "memory": {"guarantee": "2G", "limit": "4G"},
                    "node_pool": "cpu"}}
GPU = {"slug": "gpu", "display_name": "GPU", "image": "quay.io/jupyter/pytorch-notebook:cuda12-2024-12-09",
       "hardware": {"kind": "gpu", "gpus": 1, "cpu": {"guarantee": 4, "limit": 8},
                    "memory": {"guarantee": "16G", "limit": "32G"}, "node_pool": "gpu"},
       "access": {"groups": ["gpu-users"]}}
MIG = {"slug": "gpu-mig", "display_name": "GPU (MIG)",
       "hardware": {"kind": "mig", "mig_profile": "1g.5gb", "node_pool": "gpu-mig"}}
INLINE = [CPU, GPU, MIG]


def inline(*edits, profiles=None, **settings) -> dict:
    """An inline catalog of INLINE, each ``edit(profiles)`` applied to a copy."""
    profiles = copy.deepcopy(INLINE if profiles is None else profiles)
    for edit in edits:
        edit(profiles)
    return spawner(catalog_file="", profiles=profiles, **settings)


def setting(index: int, dotted: str, value):
    """Set ``profiles[index].<dotted>`` (``hardware.gpus``); a value of DELETE removes the key."""
    def apply(profiles):
        node = profiles[index]
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(last)
        else:
            node[last] = value
    return apply


def rename(index: int, old: str, new: str):
    def apply(profiles):
        profiles[index] = {(new if k == old else k): v for k, v in profiles[index].items()}
    return apply


DELETE = object()
LEDGER_BUDGET = {"budgets": [{"profile": "gpu", "hours": 20}]}
SHARED_PASSWORD = "JUPYTERHUB_SHARED_PASSWORD"
ADMIN_PASSWORD = "JUPYTERHUB_SHARED_ADMIN_PASSWORD"
PW = "hub.config.ClassroomSharedPasswordAuthenticator"


def env(**values) -> dict:
    """hub.extraEnv entries with plain values (a password written into the values file) in place of the base's
    Secret references (``valueFrom: null``: a container's env entry takes one or the other)."""
    return {"hub": {"extraEnv": {name: {"value": value, "valueFrom": None} for name, value in values.items()}}}


def merged(*overlays) -> dict:
    from jupyterhub_ext.cli.values import merge

    out: dict = {}
    for overlay in overlays:
        out = merge(out, overlay)
    return out


CASES = [
    # -- settings and sections nobody reads ----------------------------------------------------------------------
    Case("catalog-file-typo", "catalog_flie: the operator's own catalog file, typo'd",
         spawner(catalog_flie="/usr/local/etc/jupyterhub/catalog.yaml"),
         (exact(f"{S}.catalog_flie: unknown setting 'catalog_flie': did you mean 'catalog_file'?"),)),
    Case("section-typo", "ProfileKubeSpawner: the whole section misspelled",
         config(ProfileKubeSpawner={"home_mode": "pvc"}),
         (exact("hub.config.ProfileKubeSpawner: no configurable class is called 'ProfileKubeSpawner': did you mean "
                "'ProfilesKubeSpawner'? (its settings are ignored as written)"),)),
    Case("mixin-as-section", "a setting written under the mixin docs/settings.md names (CatalogMixin)",
         config(CatalogMixin={"admins_see_all": False}),
         (key("hub.config.CatalogMixin", "write them under ProfilesKubeSpawner"),)),
    Case("two-unknown-settings", "two typos in two of our sections: both, at once",
         merged(spawner(home_pvc_szie="5Gi"), config(ClassroomSharedPasswordAuthenticator={"allowed_user": ["ta"]})),
         # in the order the sections are written: helm/values.yaml has the authenticator's first
         (exact(f"{PW}.allowed_user: unknown setting 'allowed_user': did you mean 'allowed_users'?"),
          exact(f"{S}.home_pvc_szie: unknown setting 'home_pvc_szie': did you mean 'home_pvc_size'?"))),
    Case("catalog-file-empty", "catalog_file: left without a value (YAML null)",
         spawner(catalog_file=None),
         (exact(f"{S}.catalog_file: The 'catalog_file' trait of a ProfilesKubeSpawner instance expected a unicode "
                "string, not the NoneType None."),)),

    # -- the catalog -----------------------------------------------------------------------------------------------
    Case("gpus-zero", "gpus: 0 on the GPU profile", inline(setting(1, "hardware.gpus", 0)),
         (exact(f"{P}[1].hardware.gpus: expected a positive integer, got 0"),)),
    Case("memory-quantity", "memory limit 32GB (Kubernetes writes 32G or 32Gi)",
         inline(setting(1, "hardware.memory.limit", "32GB")),
         (key(f"{P}[1].hardware.memory.limit", "expected a memory quantity"),)),
    Case("guarantee-above-limit", "a CPU guarantee above its limit", inline(setting(0, "hardware.cpu.guarantee", 4)),
         (key(f"{P}[0].hardware.cpu.guarantee", "above the limit"),)),
    Case("duplicate-slug", "a copied profile whose slug was not changed",
         inline(lambda ps: ps.append({**copy.deepcopy(CPU), "display_name": "CPU (large)", "default": False})),
         (key(f"{P}[3].slug", "duplicate profile slug 'cpu'"),)),
    Case("unknown-mig-profile", "MIG profile 1g.6gb (A100 slices are 1g.5gb, 2g.10gb...)",
         inline(setting(2, "hardware.mig_profile", "1g.6gb")),
         (key(f"{P}[2].hardware.mig_profile", "unknown MIG profile '1g.6gb'"),)),
    Case("required-key-typo", "dispaly_name: the required key misspelled reads as the typo",
         inline(rename(1, "display_name", "dispaly_name")),
         (key(f"{P}[1].dispaly_name", "unknown key 'dispaly_name': did you mean 'display_name'?"),)),
    Case("camel-case-key", "nodePool: the Kubernetes spelling of node_pool",
         inline(lambda ps: ps[0]["hardware"].update(nodePool=ps[0]["hardware"].pop("node_pool"))),
         (key(f"{P}[0].hardware.nodePool", "use 'node_pool'"),)),
    Case("two-defaults", "two profiles marked default", inline(setting(1, "default", True)),
         (key(f"{P}[1].default", "two profiles are marked default"),)),
    Case("free-text-without-pattern", "an image option open to any text",
         inline(setting(0, "options", [{"slug": "image", "display_name": "Image",
                                        "free_text": {"display_name": "Any image"}}])),
         (key(f"{P}[0].options[0].free_text.pattern", "needs a pattern"),)),
    Case("override-typo", "kubespawner_override with mem_limt", inline(setting(0, "kubespawner_override",
                                                                              {"mem_limt": "4G"})),
         (key(f"{P}[0].kubespawner_override.mem_limt", "did you mean 'mem_limit'"),)),
    Case("override-camel", "kubespawner_override with the pod spec's lifecycleHooks",
         inline(setting(0, "kubespawner_override", {"lifecycleHooks": {}})),
         (key(f"{P}[0].kubespawner_override.lifecycleHooks", "use 'lifecycle_hooks'"),)),
    Case("profiles-and-catalog-file", "an inline catalog added while catalog_file still names the EKS one",
         spawner(profiles=copy.deepcopy(INLINE)),
         (exact(f"{S}.catalog_file: set either profiles or catalog_file, not both"),)),
    Case("raw-profile-list-too", "singleuser.profileList beside the catalog (two forms)",
         {"singleuser": {"profileList": [{"display_name": "Small", "slug": "small"}]}},
         (key(f"{S}.profile_list", "a catalog is configured; remove the raw profile_list"),), chart_only=True),

    # -- fair use --------------------------------------------------------------------------------------------------
    Case("cap-on-missing-profile", "a cap on 'gpus' (the profile is 'gpu')",
         spawner(limits={"caps": [{"profile": "gpus", "total": 4}]}),
         (key(f"{LIMITS}.caps[0].profile", "did you mean 'gpu'"),)),
    Case("negative-cap", "total: -1 meaning 'no limit'", spawner(limits={"caps": [{"profile": "gpu", "total": -1}]}),
         (key(f"{LIMITS}.caps[0].total", "positive whole number"),)),
    Case("budget-minimum-above-hours", "a start needs 10 h left of a 5 h budget",
         spawner(limits={"budgets": [{"profile": "gpu", "hours": 5, "minimum_hours": 10}]}),
         (key(f"{LIMITS}.budgets[0].minimum_hours", "no start could ever be made"),)),
    Case("unknown-pool", "a cap on pool 'a100' that pools does not define",
         spawner(limits={"pools": {"gpus": ["gpu", "gpu-mig"]}, "caps": [{"pool": "a100", "total": 2}]}),
         (key(f"{LIMITS}.caps[0].pool", "no pool 'a100'"),)),
    Case("budgets-without-ledger", "usage_ledger: false with hour budgets",
         spawner(usage_ledger=False, limits=LEDGER_BUDGET),
         (key(f"{S}.usage_ledger", "it cannot be turned off with budgets"),)),
    Case("cull-rule-zero", "idle_minutes: 0 meaning 'never cull'",
         spawner(limits={"culling": [{"profile": "gpu", "idle_minutes": 0}]}),
         (key(f"{LIMITS}.culling[0].idle_minutes", "positive number of minutes"),)),
    Case("cull-rule-camel", "maxAgeHours in a cull rule", spawner(limits={"culling": [{"profile": "gpu",
                                                                                       "maxAgeHours": 12}]}),
         (key(f"{LIMITS}.culling[0].maxAgeHours", "use 'max_age_hours'"),)),

    # -- storage ---------------------------------------------------------------------------------------------------
    Case("home-mode-unknown", "home_mode: nfs (efs, pvc or none)", spawner(home_mode="nfs"),
         (exact(f"{S}.home_mode: The 'home_mode' trait of a ProfilesKubeSpawner instance expected any of ['efs', "
                "'pvc', 'none'], not the str 'nfs'."),)),
    Case("home-pvc-name", "home_pvc: EFS_home (claim names are DNS names)", spawner(home_pvc="EFS_home"),
         (key(f"{S}.home_pvc", "not a valid"),)),
    Case("home-template-without-user", "home_subpath_template: homes (one directory for everyone)",
         spawner(home_subpath_template="homes"),
         (key(f"{S}.home_subpath_template", "every user"),)),
    Case("pvc-size", "home_pvc_size: 10 GB on the classroom's own disks", spawner(home_pvc_size="10 GB"),
         (key(f"{S}.home_pvc_size", "storage size"),), shipped=CLASSROOM),
    Case("root-uid", "singleuser.uid: 0 to fix permissions", {"singleuser": {"uid": 0}},
         (key("KubeSpawner.uid (Helm: singleuser.uid)", "0 is root"),), chart_only=True),
    Case("grant-sudo", "singleuser.extraEnv GRANT_SUDO for pip installs", {"singleuser": {"extraEnv":
                                                                            {"GRANT_SUDO": "yes"}}},
         (key("KubeSpawner.environment (Helm: singleuser.extraEnv).GRANT_SUDO", "root start"),), chart_only=True),

    # -- courses ---------------------------------------------------------------------------------------------------
    Case("course-duplicate-name", "a second course pasted with the same name",
         spawner(courses=[{"name": "course", "image": "ghcr.io/example-org/jupyterhub-ext-course:0.1.0", "folder": "."},
                          {"name": "course", "image": "ghcr.io/example-org/stats200:1", "folder": "stats200"}]),
         (key(f"{S}.courses[1].name", "course 'course' is also"),)),
    Case("course-absolute-folder", "folder: /home/jovyan/stats200 (a folder of the home is relative)",
         spawner(courses=[{"name": "stats200", "image": "ghcr.io/example-org/stats200:1",
                           "folder": "/home/jovyan/stats200"}]),
         (key(f"{S}.courses[0].folder", "is absolute"),)),
    Case("course-groups-string", "groups: stats200 (a list of names)",
         spawner(courses=[{"name": "stats200", "image": "ghcr.io/example-org/stats200:1", "folder": "stats200",
                           "groups": "stats200"}]),
         (key(f"{S}.courses[0].groups", "expected a list of names"),)),

    # -- logins ----------------------------------------------------------------------------------------------------
    Case("cognito-no-client-id", "the Cognito app client id left out", config(CognitoAuthenticator={"client_id": ""}),
         (key("hub.config.CognitoAuthenticator.client_id", "must be set to the client id"),), shipped=COGNITO),
    Case("keycloak-scope-without-openid", "scope: [profile, email] (openid dropped)",
         config(KeycloakAuthenticator={"scope": ["profile", "email"]}),
         (key("hub.config.KeycloakAuthenticator.scope", "must include 'openid'"),), shipped=KEYCLOAK),
    Case("keycloak-groups-unmanaged", "manage_groups: false while allowed_groups restricts the login",
         config(KeycloakAuthenticator={"manage_groups": False}),
         # oauthenticator refuses it first, while the authenticator loads its settings (naming the first of
         # allowed_groups and admin_groups it meets)
         (anywhere("_groups requires KeycloakAuthenticator.manage_groups to also be set"),),
         shipped=KEYCLOAK),
    Case("shared-password-short", "the students' password written into the values, too short",
         env(**{SHARED_PASSWORD: "jupyter"}),
         (key(f"{PW}.user_password_env ($JUPYTERHUB_SHARED_PASSWORD)", "at least 8 characters long, got 7"),)),
    Case("admin-password-same", "the admin given the students' password",
         env(**{SHARED_PASSWORD: "x" * 40, ADMIN_PASSWORD: "x" * 40}), shipped=CLASSROOM,
         lines=(key(f"{PW}.admin_password_env ($JUPYTERHUB_SHARED_ADMIN_PASSWORD)",
                    "must differ from the students' password"),)),

    # -- the wiring -----------------------------------------------------------------------------------------------
    Case("setup-not-called", "the extraConfig entry kept its import and lost the setup(c) call",
         {"hub": {"extraConfig": {"zz-jupyterhub-ext": "import jupyterhub_ext.z2jh\n"}}},
         (exact("hub.extraConfig: no entry calls jupyterhub_ext.z2jh.setup(c): the hub would start with none of "
                "these checks (docs/deploy-eks.md)"),), hub_starts=True),

    # -- several mistakes in one file ------------------------------------------------------------------------------
    Case("typo-gpus-course", "a typo'd setting, gpus: 0 and a course's groups as a string",
         merged(inline(setting(1, "hardware.gpus", 0)), spawner(shared_moutn_path="/srv/shared", courses=[
             {"name": "stats200", "image": "ghcr.io/example-org/stats200:1", "folder": "stats200",
              "groups": "stats200"}])),
         (exact(f"{S}.shared_moutn_path: unknown setting 'shared_moutn_path': did you mean 'shared_mount_path'?"),
          exact(f"{P}[1].hardware.gpus: expected a positive integer, got 0"),
          key(f"{S}.courses[0].groups", "expected a list of names"))),
    Case("storage-course-limits", "a bad claim name, a course with an absolute folder and a budget without hours",
         spawner(home_pvc="EFS_home", courses=[{"name": "stats200", "image": "ghcr.io/example-org/stats200:1",
                                                "folder": "/stats200"}],
                 limits={"budgets": [{"profile": "gpu"}]}),
         (key(f"{S}.home_pvc", "not a valid"), key(f"{S}.courses[0].folder", "is absolute"),
          key(f"{LIMITS}.budgets[0].hours", "needs its hours"))),
    Case("catalog-and-login", "a MIG typo in the catalog and Cognito with no allow rule",
         merged(inline(setting(2, "hardware.mig_profile", "1g.6gb")),
                config(CognitoAuthenticator={"allowed_groups": [], "admin_groups": []})),
         (key(f"{P}[2].hardware.mig_profile", "unknown MIG profile '1g.6gb'"),
          key("hub.config.CognitoAuthenticator.allowed_groups", "no allow rule is set")), shipped=COGNITO),
    Case("section-typo-and-password", "a misspelled section and a short admin password",
         merged(config(ProfilesKubeSpawnr={"home_mode": "pvc"}),
                env(**{SHARED_PASSWORD: "correct horse battery", ADMIN_PASSWORD: "short-admin-password"})),
         (key("hub.config.ProfilesKubeSpawnr", "did you mean 'ProfilesKubeSpawner'?"),
          key(f"{PW}.admin_password_env ($JUPYTERHUB_SHARED_ADMIN_PASSWORD)", "at least 32 characters long, got 20"))),
]

BY_ID = {case.id: case for case in CASES}
