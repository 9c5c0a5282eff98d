"""Courses: the configured list (:mod:`.model`, :mod:`.traits`), how each reaches a home on Kubernetes
(:mod:`.plan`, pure, and :mod:`.kube`, the spawner's part). The seeder itself is :mod:`jupyterhub_ext.seeder`."""
