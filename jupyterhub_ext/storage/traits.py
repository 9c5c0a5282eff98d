"""The storage settings of ProfilesKubeSpawner (``c.ProfilesKubeSpawner.home_mode`` ...): each default once, here."""

from __future__ import annotations

from traitlets import Enum, HasTraits, List, Unicode, default

from .naming import DIR_SCHEMES

HOME_MODES = ("efs", "pvc", "none")
OWNERSHIP_MODES = ("access-point", "init-container")


class NamingTraits(HasTraits):
    """Where a user's home is and who writes the shared folder: the local run has these settings too."""

    home_subpath_template = Unicode(
        "{username}",
        config=True,
        help="""The user's home directory, relative to the homes' root: ``home_pvc`` in ``efs`` mode, and
        ``<data_dir>/homes`` in the local run (the same names in both).

        Fields: ``{username}`` (rendered with ``home_dir_scheme``), ``{escaped_username}``,
        ``{safe_username}`` and ``{userid}``; other text may use letters, digits, ``.``, ``_``, ``-`` and ``/``,
        e.g. ``homes/{username}`` (needed when the shared volume is the same PVC). The z2jh chart's
        ``singleuser.storage.static.subPath`` default is ``{username}``.
        """,
    )
    home_dir_scheme = Enum(
        list(DIR_SCHEMES),
        default_value="escape",
        config=True,
        help="""How ``{username}`` becomes a directory name, independent of KubeSpawner's ``slug_scheme``.

        - ``escape`` (default): KubeSpawner < 7's rendering (``Alice.B`` -> ``-41lice-2eb``), so homes made
          under z2jh 3 / KubeSpawner 6 stay where they are. Exactly injective; names whose escaped form is
          longer than 63 characters (which KubeSpawner 6 could not start) become ``<prefix>--<128-bit hash>``.
        - ``safe``: KubeSpawner 7's default (``alice.b`` kept, others ``alice-b---1a2b3c4d``). Choose it only
          for homes created with z2jh 4 defaults; its 32-bit hash suffix is KubeSpawner's.

        Changing it moves every home whose name renders differently: see docs/storage.md.
        """,
    )
    shared_write_groups = List(
        Unicode(),
        default_value=["instructors"],
        config=True,
        help="Groups whose members write the shared volume, mounted read-write for them (admins always do).",
    )


class StorageTraits(NamingTraits):
    """Home and shared volume settings; docs/storage.md explains the modes and the reasons."""

    home_mode = Enum(
        list(HOME_MODES),
        default_value="efs",
        config=True,
        help="""Where each user's home (``home_mount_path``) lives.

        - ``efs``: one directory per user (``home_subpath_template``) on one shared ReadWriteMany PVC
          (``home_pvc``, e.g. EFS through the EFS CSI driver).
        - ``pvc``: one PVC per user, created on first start by KubeSpawner itself (``pvc_name_template``,
          ``home_pvc_size``, ``home_storage_class``): the AKS classroom setup, one disk per user.
        - ``none``: no home volume; files live as long as the pod (demos).

        With ``efs`` or ``pvc`` set the chart's ``singleuser.storage.type`` to ``none``.
        """,
    )
    home_pvc = Unicode(
        "efs-persist",
        config=True,
        help="The PersistentVolumeClaim holding every user's home directory in ``efs`` mode.",
    )
    home_mount_path = Unicode(
        "/home/jovyan",
        config=True,
        help="Where the home is mounted in the user container.",
    )
    home_pvc_size = Unicode(
        "1Gi",
        config=True,
        help="Size of a new per-user PVC in ``pvc`` mode (KubeSpawner's ``storage_capacity``).",
    )
    home_storage_class = Unicode(
        "",
        config=True,
        help="StorageClass of a new per-user PVC in ``pvc`` mode; empty for the cluster's default class.",
    )
    home_ownership = Enum(
        list(OWNERSHIP_MODES),
        default_value="access-point",
        config=True,
        help="""How the home comes to be owned by ``uid``/``gid`` (1000/100) without root in the user container.

        - ``access-point`` (the default in ``efs`` and ``none`` mode): nothing runs in the pod. The storage hands
          out the ownership: an EFS access point with a POSIX user 1000/100 (``efs``), or ``fsGroup`` with
          ``fsGroupChangePolicy: OnRootMismatch`` on a per-user disk (``pvc``) - which leaves a fresh disk's
          root owned by root (group 100, group-writable). Meets Pod Security ``restricted``.
        - ``init-container`` (the default in ``pvc`` mode, where a fresh disk's root is root's: git refuses a
          repository there, "detected dubious ownership", and the user cannot chmod their own home): a small
          init container (``home_init_image``) runs as root with only the CHOWN, DAC_OVERRIDE and FOWNER
          capabilities, sees only this user's own directories, and fixes their owner and mode
          non-recursively, only when wrong (once per disk). Needs Pod Security ``baseline``.
        """,
    )

    @default("home_ownership")
    def _home_ownership_default(self):
        # a fresh per-user disk's root is root:root; fsGroup only makes it root:100
        return "init-container" if self.home_mode == "pvc" else "access-point"

    home_init_image = Unicode(
        "quay.io/jupyterhub/k8s-network-tools:4.4.0",
        config=True,
        help="""Image of the ``init-container`` ownership fix: needs ``sh``, ``stat`` and ``chown``. The default
        is the z2jh 4.4.0 chart's own network-tools image, already on user nodes. Never the user's image.""",
    )
    shared_pvc = Unicode(
        "",
        config=True,
        help="""PVC mounted at ``shared_mount_path`` for everyone (e.g. ``efs-persist-shared``); empty for none.

        Read-only for users, read-write for admins and ``shared_write_groups``. It must not be the homes'
        volume root: the same PVC as ``home_pvc`` is refused unless both live in separate directories.
        """,
    )
    shared_subpath = Unicode(
        "",
        config=True,
        help="Directory of ``shared_pvc`` to mount (its root when empty).",
    )
    shared_mount_path = Unicode(
        "/home/shared",
        config=True,
        help="Where the shared volume is mounted in the user container.",
    )
    shared_group_dirs = List(
        Unicode(),
        config=True,
        help="""Groups with a directory ``<shared_mount_path>/<group>`` that their members may write (mounted
        read-write over the read-only shared volume); everyone else reads it.""",
    )
