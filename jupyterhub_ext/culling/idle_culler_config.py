# jupyterhub-idle-culler 2.x's config file (--config=<this file>), written into the chart's culler service command
# by jupyterhub_ext.z2jh.setup(c): the culler asks jupyterhub_ext's hook about every server. Not a module to import.
from jupyterhub_ext.culling.arbiter import arbiter_from_env

c = get_config()  # noqa: F821 - traitlets' config loader provides it
c.IdleCuller.cull_arbiter_hook = arbiter_from_env()
