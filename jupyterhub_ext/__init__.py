"""jupyterhub_ext: server profiles, logins, storage and course material for JupyterHub on Kubernetes."""

__version__ = "0.1.0"
