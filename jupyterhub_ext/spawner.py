"""ProfilesKubeSpawner: KubeSpawner with a validated catalog, per-user profiles and server-side enforcement."""

from __future__ import annotations

import copy
from typing import Any

from kubespawner import KubeSpawner
from traitlets import default
from traitlets.config import Config

from .catalog import kubespawner as ks
from .course import CourseMixin
from .errors import ConfigError
from .profiles import CatalogMixin
from .storage import StorageMixin


class ProfilesKubeSpawner(CatalogMixin, StorageMixin, CourseMixin, KubeSpawner):
    """KubeSpawner whose ``profile_list`` comes from a validated catalog, filtered for each user.

    The same per-user list renders the form and checks every request (form or REST API) before anything
    reaches Kubernetes. Overrides are applied with KubeSpawner's own machinery on top of the configured
    (chart) values, which are restored before each start so one start's profile never leaks into the next.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._base_values: dict[str, Any] = {}
        self.selection = None

    @default("profile_list")
    def _profile_list_default(self):
        # Only offer the catalog when one is configured; otherwise behave exactly like KubeSpawner.
        if self.catalog is None:
            return []
        return self._catalog_profile_list

    def _catalog_profile_list(self, spawner: "ProfilesKubeSpawner") -> list[dict]:
        return ks.profile_list(spawner.user_view())

    # -- the request ---------------------------------------------------------------------------------

    def _options_from_form(self, formdata: dict) -> dict:
        user_options = super()._options_from_form(formdata)
        if self.catalog is not None:
            # checked here too, so a bad form submission is answered on the form itself
            self.selection_for(user_options)
        return user_options

    async def load_user_options(self) -> None:
        self._restore_base_values()
        if self.catalog is None:
            await super().load_user_options()  # KubeSpawner's own profile_list, if any
            self.selection = None
        else:
            selection = self.selection_for(self.user_options)
            overrides = ks.overrides(selection, self._base_value("tolerations"))
            for key in overrides:
                self._base_value(key)
            self.log.info("Starting profile %r for %s with %s", selection.profile.slug, self._log_name,
                          selection.labels())
            self._apply_overrides(overrides)
            self.selection = selection
        # storage and the seeder apply to every start, merged over whatever the profile set; both capture the
        # configured values first (_base_value), so the next start begins from them again
        self.apply_storage_plan()
        self._base_value("lifecycle_hooks")
        self.lifecycle_hooks = self.combined_lifecycle_hooks(self.lifecycle_hooks)

    def _base_value(self, name: str) -> Any:
        """The configured value of a trait, captured before any profile touched it."""
        if name not in self._base_values:
            self._base_values[name] = copy.deepcopy(getattr(self, name))
        return self._base_values[name]

    def _restore_base_values(self) -> None:
        for name, value in self._base_values.items():
            setattr(self, name, copy.deepcopy(value))

    # -- start-up check ------------------------------------------------------------------------------

    def check_catalog(self) -> None:
        """Validate the whole catalog against this configuration; raise ConfigError naming the key."""
        catalog = self.catalog
        if catalog is None:
            return
        path = f"{self.catalog_config_name}.profiles"
        if self.config.KubeSpawner.get("profile_list") or self.config.ProfilesKubeSpawner.get("profile_list"):
            raise ConfigError(f"{self.catalog_config_name}.profile_list",
                              "a catalog is configured; remove the raw profile_list (singleuser.profileList)")
        traits = self.traits()

        def validate(key: str, value: Any) -> None:
            traits[key]._validate(self, copy.deepcopy(value))

        ks.check_catalog(catalog, path, validate)

    @classmethod
    def check_config(cls, config: Config) -> None:
        """Build a spawner from ``config`` without touching Kubernetes and validate everything it holds."""
        spawner = cls(config=config, _mock=True)
        spawner.check_catalog()
        spawner.check_storage_config()
        spawner.check_course_config()
