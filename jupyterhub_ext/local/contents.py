"""The user server's contents manager: folders that are read-only through Jupyter, whatever the file modes.

Loaded inside a student's JupyterLab (``--ServerApp.contents_manager_class=...``), never by the hub. It refuses
every write the contents API can make below ``read_only_dirs`` (save, upload, new file or folder, copy into,
rename, delete, checkpoints) with 403 and a message, and marks those files ``writable: false`` so JupyterLab
opens them read-only.

Paths are compared after resolving symlinks, so ``shared/../shared/x``, a symlink the student made that points
into the shared folder, or the ``shared`` link itself are all covered. This guards the file browser and the
REST API; it cannot stop code the student runs in a kernel or a terminal. When the hub runs as root each server
also runs as its own unprivileged uid and the file system refuses those writes too (see docs/local.md).
"""

from __future__ import annotations

import os

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado.web import HTTPError
from traitlets import List, Unicode


class ReadOnlyDirsContentsManager(AsyncLargeFileManager):
    read_only_dirs = List(
        Unicode(),
        config=True,
        help="Absolute directories (symlinks resolved) under which nothing may be written through Jupyter.",
    )

    def _real_read_only_dirs(self) -> list[str]:
        return [os.path.realpath(d) for d in self.read_only_dirs if d]

    def is_read_only(self, path: str) -> bool:
        """True when the API ``path`` is, or resolves to something, inside a read-only directory."""
        try:
            os_path = self._get_os_path(path.strip("/"))
        except HTTPError:
            return False  # outside the root: the parent class refuses it anyway
        real = os.path.realpath(os_path)
        return any(real == d or real.startswith(d.rstrip(os.sep) + os.sep) for d in self._real_read_only_dirs())

    def _refuse_writes(self, *paths: str) -> None:
        for path in paths:
            if self.is_read_only(path):
                self.log.warning("Refused a write to read-only %r", path)
                raise HTTPError(403, f"{path.strip('/')}: the shared folder is read-only for you")

    async def get(self, path, content=True, type=None, format=None, **kwargs):
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        if self.is_read_only(path):
            model["writable"] = False
        if model.get("type") == "directory" and isinstance(model.get("content"), list):
            for child in model["content"]:
                if child.get("writable") and self.is_read_only(child["path"]):
                    child["writable"] = False
        return model

    async def save(self, model, path=""):
        self._refuse_writes(path)
        return await super().save(model, path)

    async def delete_file(self, path):
        self._refuse_writes(path)
        return await super().delete_file(path)

    async def rename_file(self, old_path, new_path):
        self._refuse_writes(old_path, new_path)
        return await super().rename_file(old_path, new_path)

    async def create_checkpoint(self, path):
        self._refuse_writes(path)
        return await super().create_checkpoint(path)

    async def restore_checkpoint(self, checkpoint_id, path):
        self._refuse_writes(path)
        return await super().restore_checkpoint(checkpoint_id, path)

    async def delete_checkpoint(self, checkpoint_id, path):
        self._refuse_writes(path)
        return await super().delete_checkpoint(checkpoint_id, path)
