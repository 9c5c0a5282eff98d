"""JupyterHub 5.3+ warns of 'unhandled user_options' at every start unless apply_user_options takes them; ours
are applied by load_user_options, so the hook is a no-op that keeps the log quiet."""

from __future__ import annotations

import logging

from jupyterhub_ext.spawner import ProfilesKubeSpawner


async def test_the_start_does_not_log_unhandled_user_options(caplog):
    spawner = ProfilesKubeSpawner(_mock=True)
    caplog.set_level(logging.WARNING)
    await spawner._run_apply_user_options({"profile": "data-engineering", "image": "pyspark-3-5"})
    assert "unhandled user_options" not in caplog.text
