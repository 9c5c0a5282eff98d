"""The configured values of the traits a start changes: captured before the first change, put back before each
start, so one start's profile never leaks into the next (both spawners use it)."""

from __future__ import annotations

import copy
from typing import Any, Iterable


class ConfiguredValues:
    """Mixin for a Configurable whose starts set some of its traits."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._configured_values: dict[str, Any] = {}

    def configured(self, name: str) -> Any:
        """The configured value of trait ``name`` (captured now if no start has changed it yet)."""
        if name not in self._configured_values:
            self._configured_values[name] = copy.deepcopy(getattr(self, name))
        return self._configured_values[name]

    def restore_configured(self, names: Iterable[str]) -> None:
        """Capture ``names`` (those not captured yet), then put every captured trait back to its configured value."""
        fresh = {name for name in names if name not in self._configured_values}
        for name in fresh:
            self.configured(name)
        for name, value in self._configured_values.items():
            if name not in fresh:  # a trait captured just now holds its configured value already
                setattr(self, name, copy.deepcopy(value))
