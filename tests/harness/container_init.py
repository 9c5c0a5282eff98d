"""Start one container process: the local kubelet's stand-in for runc. Stdlib only; run as
``python -I -S container_init.py SPEC.json``.

With ``isolation == "namespaces"`` (root with CAP_SYS_ADMIN, the normal case here) the process gets its own
mount and UTS namespaces: volumes are bind-mounted at their real ``mountPath`` (read-only ones remounted
read-only, which binds even root), missing mount points and the image's directories (``/home/jovyan``) are
created in a tmpfs-backed overlay of their nearest existing ancestor (never on ``/`` itself), the harness'
data directory is hidden, the hostname is the pod's, and privileges drop to the pod's uid/gid/groups.
With ``join_pid`` it enters that container's mount namespace instead (``kubectl exec``, lifecycle hooks).

Errors before ``exec`` are reported as one JSON line on ``status_fd`` (closed on a successful exec), so the
kubelet can tell a start failure (``StartError``, exit 128) from a process that ran and exited.
"""

import ctypes
import json
import os
import shutil
import socket
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18


class StartError(Exception):
    def __init__(self, reason, message):
        super().__init__(message)
        self.reason, self.message = reason, message


_libc = None


def _mount(source, target, fstype, flags, data=None):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    enc = lambda s: s.encode() if isinstance(s, str) else s
    if _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise StartError("CreateContainerError",
                         f"failed to mount {source or ''} on {target}: {os.strerror(err)}")


class Rootfs:
    """Mount points appear in overlays of their nearest existing ancestor, upper layers on a scratch tmpfs."""

    def __init__(self, scratch):
        self.scratch = scratch
        self.overlaid = []
        self.n = 0

    def ensure(self, path, is_file=False, owner=None, mode=None):
        if os.path.lexists(path):
            return
        ancestor = os.path.dirname(path)
        while not os.path.exists(ancestor):
            ancestor = os.path.dirname(ancestor)
        if ancestor == "/":
            raise StartError("CreateContainerError",
                             f"cannot create mount point {path}: its top-level directory does not exist on this "
                             "machine and the local kubelet never writes to the host's root")
        if not any(ancestor == o or ancestor.startswith(o + "/") for o in self.overlaid):
            self.n += 1
            upper = os.path.join(self.scratch, f"upper{self.n}")
            work = os.path.join(self.scratch, f"work{self.n}")
            os.makedirs(upper)
            os.makedirs(work)
            _mount("overlay", ancestor, "overlay", 0, f"lowerdir={ancestor},upperdir={upper},workdir={work}")
            self.overlaid.append(ancestor)
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        if is_file:
            open(path, "a").close()
        else:
            os.mkdir(path)
        if owner is not None:
            os.chown(path, *owner)
        if mode is not None:
            os.chmod(path, mode)


def setup_namespaces(spec):
    os.unshare(os.CLONE_NEWNS | os.CLONE_NEWUTS)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    if spec.get("hostname"):
        socket.sethostname(spec["hostname"][:63])
    # Resolve every source before any overlay can shadow its path.
    sources = []
    for m in spec["mounts"]:
        try:
            fd = os.open(m["source"], os.O_PATH)
        except OSError as e:
            raise StartError("CreateContainerError", f"mount source {m['source']}: {e.strerror}") from None
        sources.append(fd)
    expose(spec.get("expose", []))
    scratch = spec["scratch"]
    os.makedirs(scratch, exist_ok=True)
    _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "mode=700")
    root = Rootfs(scratch)
    for path, (uid, gid, mode) in sorted(spec.get("image_dirs", {}).items()):
        root.ensure(path, owner=(uid, gid), mode=mode)
    order = sorted(range(len(spec["mounts"])), key=lambda i: spec["mounts"][i]["target"].count("/"))
    for i in order:
        m = spec["mounts"][i]
        target = os.path.normpath(m["target"])
        is_file = not os.path.isdir(f"/proc/self/fd/{sources[i]}")
        root.ensure(target, is_file=is_file)
        _mount(f"/proc/self/fd/{sources[i]}", target, None, MS_BIND | MS_REC)
        if m.get("readOnly"):
            _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    for fd in sources:
        os.close(fd)
    for hidden in spec.get("hide", []):
        if os.path.isdir(hidden):
            _mount("tmpfs", hidden, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=755")


def expose(paths):
    """Make host paths the container needs (the Python installation) reachable for its unprivileged user.

    A non-traversable ancestor (``/root`` is 0700) is replaced, inside the container only, by a 0755 tmpfs
    holding bind mounts of just the children on the way to those paths, much as an image ships them.
    """
    masked = {}  # ancestor -> O_PATH fd of the original directory
    for path in paths:
        parts = os.path.normpath(path).strip("/").split("/")
        cur = "/"
        for i in range(len(parts) - 1):
            cur = os.path.join(cur, parts[i])
            child = os.path.join(cur, parts[i + 1])
            if cur not in masked:
                if os.stat(cur).st_mode & 0o001:
                    continue
                masked[cur] = os.open(cur, os.O_PATH)
                _mount("tmpfs", cur, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k")
            if not os.path.lexists(child):
                os.mkdir(child)
                _mount(f"/proc/self/fd/{masked[cur]}/{parts[i + 1]}", child, None, MS_BIND | MS_REC)


def join_namespace(pid):
    try:
        fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
    except OSError as e:
        raise StartError("ContainerNotRunning", f"container process {pid} is gone: {e.strerror}") from None
    os.setns(fd, os.CLONE_NEWNS)
    os.close(fd)


def setup_symlinks(spec):
    """No mount namespace (not root): mounts become symlinks under the container's rootfs directory."""
    for m in spec["mounts"]:
        link = os.path.join(spec["rootfs"], m["target"].lstrip("/"))
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if not os.path.lexists(link):
            os.symlink(m["source"], link)


def drop_privileges(spec):
    uid, gid = spec.get("uid"), spec.get("gid")
    if os.geteuid() != 0 or uid is None:
        return
    os.setgroups(sorted(set(spec.get("groups") or [])))
    os.setgid(gid if gid is not None else 0)
    os.setuid(uid)


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    status_fd = spec.get("status_fd")
    try:
        if spec.get("join_pid"):
            join_namespace(spec["join_pid"])
        elif spec.get("isolation") == "namespaces":
            setup_namespaces(spec)
        else:
            setup_symlinks(spec)
        drop_privileges(spec)
        os.umask(spec.get("umask", 0o022))
        env = spec["env"]
        cwd = spec.get("cwd") or "/"
        try:
            os.chdir(cwd)
        except OSError as e:
            raise StartError("StartError", f'failed to create containerd task: failed to create shim task: OCI '
                                           f'runtime create failed: runc create failed: unable to start container '
                                           f'process: error during container init: chdir to cwd ("{cwd}") set in '
                                           f'config.json failed: {e.strerror.lower()}: unknown') from None
        argv = spec["argv"]
        if not argv:
            raise StartError("CreateContainerError", "no command specified")
        exe = argv[0]
        if "/" not in exe:
            exe = shutil.which(exe, path=env.get("PATH", "/usr/bin:/bin"))
        if not exe or not os.access(exe, os.X_OK):
            raise StartError("StartError", f'failed to create containerd task: failed to create shim task: OCI '
                                           f'runtime create failed: runc create failed: unable to start container '
                                           f'process: error during container init: exec: "{argv[0]}": executable '
                                           f'file not found in $PATH: unknown')
        if status_fd is not None:
            os.set_inheritable(status_fd, False)  # FD_CLOEXEC: closes on a successful exec
        os.execve(exe, argv, env)
    except StartError as e:
        if status_fd is not None:
            os.write(status_fd, (json.dumps({"reason": e.reason, "message": e.message}) + "\n").encode())
        print(e.message, file=sys.stderr)
        sys.exit(128)
    except OSError as e:
        msg = f"container init failed: {e}"
        if status_fd is not None:
            os.write(status_fd, (json.dumps({"reason": "StartError", "message": msg}) + "\n").encode())
        print(msg, file=sys.stderr)
        sys.exit(128)


if __name__ == "__main__":
    main()
