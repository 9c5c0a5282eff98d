"""Start one container process: the local kubelet's stand-in for runc. Stdlib only; run as
``python -I -S container_init.py SPEC.json``.

With ``isolation == "namespaces"`` (root with CAP_SYS_ADMIN, the normal case here) the process gets its own
mount and UTS namespaces and is chrooted into its own root: an overlay of the host's root filesystem (standing
in for the image) with a tmpfs as the container's writable layer, /proc, /sys and /dev bound in, the image's
directories (``/home/jovyan``) created in that layer, volumes bind-mounted at their real ``mountPath`` (read-only
ones remounted read-only, which binds even root), the harness' data directory hidden; the hostname is the
pod's, and privileges drop to the pod's uid/gid/groups. Nothing the container writes outside its volumes
reaches the host.
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


CLONE_NEWNS, CLONE_NEWUTS = 0x00020000, 0x04000000  # os.CLONE_* from Python 3.12 on


def _libc_call(name, *args):
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def unshare(flags):
    """os.unshare (Python 3.12+), or libc's on older Pythons (the 3.11 environment runs the harness too)."""
    if hasattr(os, "unshare"):
        os.unshare(flags)
    else:
        _libc_call("unshare", flags)


def setns(fd, nstype):
    if hasattr(os, "setns"):
        os.setns(fd, nstype)
    else:
        _libc_call("setns", fd, nstype)


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


def _mount_points():
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4].replace("\\040", " ") for line in f]


def _traversable(root, paths):
    """The container's user must reach what the image ships (the Python installation): ancestors that are
    not world-searchable (``/root`` is 0700) get o+x in the container's own copy-on-write layer only."""
    for path in paths:
        cur = root
        for part in os.path.normpath(path).strip("/").split("/")[:-1]:
            cur = os.path.join(cur, part)
            try:
                st = os.stat(cur)
            except OSError:
                break
            if not st.st_mode & 0o001:
                os.chmod(cur, (st.st_mode | 0o001) & 0o7777)


def setup_namespaces(spec):
    """Build the container's root: an overlay of the host's root filesystem (the "image") whose writable
    layer is a tmpfs (the container layer, gone with the container), the kernel filesystems bound in, the
    volumes bound at their mount paths, then chroot into it."""
    unshare(CLONE_NEWNS | CLONE_NEWUTS)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    if spec.get("hostname"):
        socket.sethostname(spec["hostname"][:63])
    sources = []
    for m in spec["mounts"]:  # resolve every source before anything can shadow its path
        try:
            sources.append(os.open(m["source"], os.O_PATH))
        except OSError as e:
            raise StartError("CreateContainerError", f"mount source {m['source']}: {e.strerror}") from None
    scratch = spec["scratch"]
    os.makedirs(scratch, exist_ok=True)
    _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    upper, work, root = (os.path.join(scratch, d) for d in ("upper", "work", "root"))
    for d in (upper, work, root):
        os.mkdir(d)
    _mount("overlay", root, "overlay", 0, f"lowerdir=/,upperdir={upper},workdir={work}")
    # kernel filesystems, and any separate filesystem holding what the image ships (the Python installation)
    points = _mount_points()
    wanted = {"/proc", "/sys", "/dev"}
    for path in spec.get("expose", []):
        best = max((p for p in points if path == p or path.startswith(p.rstrip("/") + "/")), key=len, default="/")
        if best != "/":
            wanted.add(best)
    for point in sorted(wanted):
        if os.path.isdir(point):
            target = root + point
            os.makedirs(target, exist_ok=True)
            _mount(point, target, None, MS_BIND | MS_REC)
    _traversable(root, spec.get("expose", []))
    for path, (uid, gid, mode) in sorted(spec.get("image_dirs", {}).items()):
        target = root + os.path.normpath(path)
        if not os.path.isdir(target):
            os.makedirs(target)
            os.chown(target, uid, gid)
            os.chmod(target, mode)
    order = sorted(range(len(spec["mounts"])), key=lambda i: spec["mounts"][i]["target"].count("/"))
    for i in order:
        m = spec["mounts"][i]
        target = root + os.path.normpath(m["target"])
        if not os.path.lexists(target):
            if os.path.isdir(f"/proc/self/fd/{sources[i]}"):
                os.makedirs(target)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                open(target, "a").close()
        _mount(f"/proc/self/fd/{sources[i]}", target, None, MS_BIND | MS_REC)
        if m.get("readOnly"):
            _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    for fd in sources:
        os.close(fd)
    for hidden in spec.get("hide", []):  # the harness' data directory: other pods' volumes and specs
        if os.path.isdir(root + hidden):
            _mount("tmpfs", root + hidden, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=755")
    os.chroot(root)
    os.chdir("/")


def join_namespace(pid):
    # the mount namespace, and the UTS one as `kubectl exec` and exec hooks do: `hostname` answers the pod's name
    for ns, nstype in (("mnt", CLONE_NEWNS), ("uts", CLONE_NEWUTS)):
        try:
            fd = os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY)
        except OSError as e:
            raise StartError("ContainerNotRunning", f"container process {pid} is gone: {e.strerror}") from None
        setns(fd, nstype)
        os.close(fd)
    os.chroot(f"/proc/{pid}/root")  # the container's root, not the namespace's
    os.chdir("/")


def setup_symlinks(spec):
    """No mount namespace (not root): the container's paths live under ``rootfs``: its image directories are
    made there and each mount path is a symlink to the volume; the working directory and $HOME follow."""
    rootfs = spec["rootfs"]
    for path in spec.get("image_dirs", {}):
        os.makedirs(rootfs + os.path.normpath(path), exist_ok=True)
    for m in sorted(spec["mounts"], key=lambda m: m["target"].count("/")):
        link = rootfs + os.path.normpath(m["target"])
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.isdir(link) and not os.path.islink(link) and not os.listdir(link):
            os.rmdir(link)  # an empty image directory gives way to the volume
        if not os.path.lexists(link):
            os.symlink(m["source"], link)
    prefixes = [os.path.normpath(p) for p in list(spec.get("image_dirs", {})) + [m["target"] for m in spec["mounts"]]]

    def relocate(path):
        p = os.path.normpath(path)
        return rootfs + p if any(p == q or p.startswith(q + "/") for q in prefixes) else path
    spec["cwd"] = relocate(spec.get("cwd") or "/")
    if "HOME" in spec["env"]:
        spec["env"]["HOME"] = relocate(spec["env"]["HOME"])


def drop_privileges(spec):
    uid, gid = spec.get("uid"), spec.get("gid")
    if os.geteuid() != 0 or uid is None or spec.get("isolation") != "namespaces":
        return
    os.setgroups(sorted(set(spec.get("groups") or [])))
    os.setgid(gid if gid is not None else 0)
    os.setuid(uid)


def _die_with_kubelet():
    """SIGKILL when the kubelet's thread goes away (a killed test run leaves no notebook behind). Set after
    dropping privileges: a credential change clears it."""
    PR_SET_PDEATHSIG = 1
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    _libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    if os.getppid() == 1:  # the parent is already gone
        os._exit(137)


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
        _die_with_kubelet()
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
