"""The whole platform on one machine, no cluster, no internet: ``jupyterhub -f jupyterhub_config.py``.

``./scripts/run`` installs what it needs and runs exactly that. Open http://127.0.0.1:8000 and log in as
``student`` or ``instructor`` (admin) with the passwords printed at start-up. docs/local.md explains it all.

- Servers: LocalProfilesSpawner, one JupyterLab process per user, offering the catalog of helm/values.yaml (read
  from that file, so the two cannot drift; today ``builtin:eks``); profiles needing a GPU or a Neuron device
  this machine lacks are shown as unavailable.
- Login: ClassroomSharedPasswordAuthenticator, as in helm/values.yaml. Passwords come from
  $JUPYTERHUB_SHARED_PASSWORD and $JUPYTERHUB_SHARED_ADMIN_PASSWORD (32+ characters), or are generated on the
  first start, printed once, and kept in <data>/hub/.
- Data: everything written goes under one directory, ``.local-data/`` here or $JUPYTERHUB_EXT_DATA.
- Course: the user image's course material (images/singleuser/course), seeded into each home before each start.
"""

from pathlib import Path

import yaml

import jupyterhub_ext.z2jh
from jupyterhub_ext.local import hub as local
from jupyterhub_ext.profiles import CatalogMixin

c = get_config()  # noqa: F821 - provided by JupyterHub's config loader

REPO = Path(__file__).resolve().parent
data = local.data_directory(default=REPO / ".local-data")

# -- the hub: on this machine only; its database, secrets and log in the data directory --------------------
c.JupyterHub.bind_url = "http://127.0.0.1:8000"
c.JupyterHub.db_url = f"sqlite:///{data.hub}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{data.hub}/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.auth_token = local.proxy_auth_token(data)  # kept: a restarted hub finds its proxy
c.ConfigurableHTTPProxy.pid_file = f"{data.hub}/jupyterhub-proxy.pid"
c.JupyterHub.extra_log_handlers = [local.log_file(f"{data.logs}/jupyterhub.log")]

# -- servers: the catalog of helm/values.yaml, homes and the shared folder in the data directory -------------
# Read from helm/values.yaml itself, not repeated here: every catalog setting (catalog_file or profiles, node
# pool label, time-slice resource, MIG names, admins_see_all), the home naming (so a home moves between this
# run and the cluster unchanged) and who may write the shared folder.
HELM_VALUES = REPO / "helm" / "values.yaml"
FROM_HELM = (*sorted(CatalogMixin.class_trait_names(config=True)),
             "home_subpath_template", "home_dir_scheme", "shared_write_groups")
helm_spawner = yaml.safe_load(HELM_VALUES.read_text(encoding="utf-8"))["hub"]["config"]["ProfilesKubeSpawner"]
for key in FROM_HELM:
    if key in helm_spawner:
        c.LocalProfilesSpawner[key] = helm_spawner[key]
# errors about them name the section of helm/values.yaml they come from (command-line settings: their own)
c.LocalProfilesSpawner.settings_written_as = {key: "ProfilesKubeSpawner" for key in FROM_HELM if key in helm_spawner}
c.LocalProfilesSpawner.data_dir = data.root
c.LocalProfilesSpawner.course_source = local.course_dir(REPO)

# Sets the spawner class and validates its configuration, command-line settings included: a mistake stops the
# hub here, naming the key.
local.with_command_line(c)
jupyterhub_ext.z2jh.setup(c, spawner="local")

# -- login: the classroom shared-password mode of helm/values.yaml, with a demo class of two -----------------
c.JupyterHub.authenticator_class = "jupyterhub_ext.auth.shared.ClassroomSharedPasswordAuthenticator"
c.ClassroomSharedPasswordAuthenticator.allowed_users = {"student"}
c.ClassroomSharedPasswordAuthenticator.admin_users = {"instructor"}
# after the checks above: a password generated now is printed (once) in the banner below
logins = local.shared_passwords(c, data, student="student", instructor="instructor")

local.announce(local.banner(c, data, logins, c.LocalProfilesSpawner.course_source))
