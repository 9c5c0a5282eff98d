"""The server-profile catalog: pure data and logic, no JupyterHub or Kubernetes I/O (but for the trait list)."""

from .access import Selection, SelectionError, View, Who, resolve, view_for
from .hardware import Settings
from .model import Catalog, Profile, parse_catalog

__all__ = ["Catalog", "Profile", "Selection", "SelectionError", "Settings", "View", "Who", "parse_catalog",
           "resolve", "view_for"]
