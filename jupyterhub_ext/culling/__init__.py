"""Per-profile culling with the chart's own culler (jupyterhub-idle-culler 2.x and its ``cull_arbiter_hook``)."""
