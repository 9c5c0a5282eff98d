#!/usr/bin/env python3
"""Benchmark: the course seeder against `cp -r` and `rsync -a --ignore-existing` (not a test).

    python benchmarks/seeder.py                      # 5,000 files / 500 MB, table on stdout
    python benchmarks/seeder.py --files 500 --size 50M --json      # JSON on stdout (--json FILE: to a file)
    python benchmarks/seeder.py --delivery --json /tmp/bench/delivery.json   # course delivery on the cluster

For each tool: a cold seed into an empty home and a warm re-seed (nothing changed), each repeated into fresh
directories (best and median wall time reported, runs interleaved so drift hits every tool alike); then
extra runs of each under `strace -c -f` (system calls per file) and `strace -f -y` (bytes written into the
home, stat calls on the trees' files). "indexed image" is the same course with the hash index an image build
writes (`--write-index`). With --fsync the durable modes are compared too, against `cp -r && sync`.

Nothing is deleted between timed runs: on filesystems mounted with `discard`, freeing blocks right before a
copy slows that copy down by several times, which would penalise whichever tool runs next.

With --delivery: what delivering the course costs a server's start, pod create -> Ready on the emulated cluster
(tests/harness: its kubelet really runs the init containers, the notebook container and its postStart hook, as
the user, on a persistent EFS-like home), for each delivery mode against the same pod without any course, in one
run: `init-container` (the default: the course image's own seeder, before the notebook starts), `image-volume`
(the course image mounted, the seeder from postStart) and `postStart` (today's `path` course: the user image
carries the course and the seeder). Each is timed at a first start into an empty home and at an unchanged
restart (pod deleted, started again on the same home); the pod specs are built by the spawner's own
``courses.plan.plan_courses`` and ``post_start_command``. Every start is checked (the course's files, sizes and
sample contents in the home, the seeder's status line) so a broken delivery cannot give a fast number. Beside the
wall time: the CPU time of the processes that ended before Ready (the delivery's: init container, postStart
exec), and "seeder alone", the same seeder on the same trees as a plain process with no pod, as the yardstick.
Image pulls are not modelled (the emulated kubelet has every image at once), nor CPU limits.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WRITE_CALLS = ("write", "writev", "pwrite64", "pwritev", "copy_file_range", "sendfile", "splice")
STAT_CALLS = ("newfstatat", "statx", "stat", "lstat", "fstat", "fstatat64")


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]?)B?", text.strip().upper())
    if not m:
        raise argparse.ArgumentTypeError("sizes look like 500M, 2G, 10000")
    return int(float(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)])


def make_course(root: str, files: int, size: int, seed: int = 7) -> None:
    """A course tree: 50 top-level folders with a few subfolders, file sizes spread around the mean."""
    rng = random.Random(seed)
    block = rng.randbytes(8 << 20) if hasattr(rng, "randbytes") else os.urandom(8 << 20)
    weights = [rng.lognormvariate(0, 1.0) for _ in range(files)]
    scale = size / sum(weights)
    sizes = [max(1, int(w * scale)) for w in weights]
    sizes[-1] += size - sum(sizes)
    for i, n in enumerate(sizes):
        d = os.path.join(root, "unit%02d" % (i % 50), "part%d" % (i % 7))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "file%05d.%s" % (i, ("ipynb", "py", "csv", "md")[i % 4])), "wb") as f:
            left = n
            while left:
                off = rng.randrange(0, len(block) - min(left, 1 << 20))
                chunk = block[off:off + min(left, 1 << 20)]
                f.write(chunk)
                left -= len(chunk)
    os.chmod(os.path.join(root, "unit00", "part0"), 0o755)


def commands(src: str, dst: str, python: str) -> dict[str, list[str]]:
    seeder = [python, "-m", "jupyterhub_ext.seeder", "--source", src, "--dest", dst]
    indexed = [python, "-m", "jupyterhub_ext.seeder", "--source", src + "-indexed", "--dest", dst]
    return {
        "cp -r": ["cp", "-r", src + "/.", dst],
        "rsync -a --ignore-existing": ["rsync", "-a", "--ignore-existing", src + "/", dst + "/"],
        "seeder": seeder,
        "seeder, indexed image": indexed,
        "cp -r && sync": ["sh", "-c", 'cp -r "$0/." "$1" && sync', src, dst],
        "seeder --fsync": seeder + ["--fsync"],
        "seeder --fsync, indexed image": indexed + ["--fsync"],
    }


def run(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one command; CPU time is what a busy shared machine distorts least."""
    before = os.times()
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = os.times()
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def install_like_an_image(work: str, python: str) -> str:
    """Copy the seeder as `pip install` would put it in an image (no editable-install finder, bytecode
    compiled), so its start-up cost is the one a hook pays."""
    site = os.path.join(work, "site")
    os.makedirs(os.path.join(site, "jupyterhub_ext"))
    shutil.copy(os.path.join(REPO, "jupyterhub_ext", "__init__.py"), os.path.join(site, "jupyterhub_ext"))
    shutil.copytree(os.path.join(REPO, "jupyterhub_ext", "seeder"), os.path.join(site, "jupyterhub_ext", "seeder"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([python, "-m", "compileall", "-q", site], check=True)
    return site


def strace_counts(cmd: list[str], env: dict, out: str) -> dict[str, int]:
    subprocess.run(["strace", "-c", "-f", "-o", out] + cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    counts = {}
    with open(out) as f:
        for line in f:
            parts = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] not in ("total",):
                try:
                    counts[parts[-1]] = int(parts[3])
                except ValueError:
                    pass
    return counts


def strace_io(cmd: list[str], env: dict, out: str, src: str, dst: str) -> dict:
    """Bytes written into files under ``dst`` (and how many of those were the seeder's own state and log),
    and stat calls on regular files inside the two trees, as seen by ``strace -f -y`` (which names the file behind
    each descriptor, so pipes between rsync's processes do not count as written data)."""
    trace = ",".join(WRITE_CALLS + STAT_CALLS)
    subprocess.run(["strace", "-f", "-qq", "-y", "-s", "4096", "-e", "trace=" + trace, "-o", out] + cmd,
                   check=True, env=env, stdout=subprocess.DEVNULL)
    real_src, real_dst = os.path.realpath(src), os.path.realpath(dst)
    res = {"data_bytes": 0, "state_bytes": 0, "src_stats": 0, "dst_stats": 0}
    pending: dict[str, str] = {}  # thread id -> target of a call strace printed as <unfinished ...>
    call = re.compile(r"^(\d+)\s+(\w+)\((.*)")
    resumed = re.compile(r"^(\d+)\s+<\.\.\. (\w+) resumed>.*\)\s+=\s+(-?\d+)")
    finished = re.compile(r"\)\s+=\s+(-?\d+)")

    def under(path: str, root: str) -> bool:
        return path.startswith(root + "/")

    def written(name: str, args: str) -> str:
        paths = re.findall(r"\d+<([^>]*)>", args)
        index = {"copy_file_range": 1, "splice": 1}.get(name, 0)  # which descriptor is written to
        return paths[index] if len(paths) > index else ""

    def statted(name: str, args: str) -> str:
        # strace -y annotates descriptors, AT_FDCWD included: AT_FDCWD</cwd>, 5</home/x/unit00>
        m = re.match(r'(?:AT_FDCWD(?:<([^>]*)>)?|-?\d+<([^>]*)>),\s*"([^"]*)"', args)
        if m:
            return os.path.join(m.group(1) or m.group(2) or "", m.group(3))
        m = re.match(r'"([^"]*)"', args) or re.match(r"-?\d+<([^>]*)>", args)
        return m.group(1) if m else ""

    def count(path: str, n: int) -> None:
        if n > 0 and under(path, real_dst):
            res["data_bytes"] += n
            if "/.course-seeder/" in path:
                res["state_bytes"] += n

    with open(out) as f:
        for line in f:
            m = resumed.match(line)
            if m:
                if m.group(2) in WRITE_CALLS:
                    count(pending.pop(m.group(1), ""), int(m.group(3)))
                continue
            m = call.match(line)
            if not m:
                continue
            name, args = m.group(2), m.group(3)
            if name in STAT_CALLS:
                if "S_IFREG" not in args:
                    continue  # directories (glibc's opendir fstats each one) and misses are not files
                path = statted(name, args)
                res["src_stats"] += under(path, real_src)
                res["dst_stats"] += under(path, real_dst) and "/.course-seeder/" not in path
            elif name in WRITE_CALLS:
                path = written(name, args)
                if line.rstrip().endswith("<unfinished ...>"):
                    pending[m.group(1)] = path
                else:
                    r = finished.search(line)
                    if r:
                        count(path, int(r.group(1)))
    res["data_bytes"] -= res["state_bytes"]
    return res


def machine(directory: str) -> dict:
    info = {"python": platform.python_version(), "kernel": platform.release(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
        with open("/proc/meminfo") as f:
            info["memory_gib"] = round(int(f.readline().split()[1]) / (1 << 20), 1)
        out = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,OPTIONS", "--target", directory],
                             capture_output=True, text=True).stdout.split()
        info["filesystem"] = " ".join(out[:1]) + (" (%s)" % out[1] if len(out) > 1 else "")
    except (OSError, StopIteration, IndexError):
        pass
    for tool in ("cp", "rsync", "strace"):
        try:
            info[tool] = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            info[tool] = "missing"
    return info


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=5000)
    p.add_argument("--size", type=parse_size, default=parse_size("500M"))
    p.add_argument("--repeat", type=int, default=3, help="timed runs per tool and phase (median reported)")
    p.add_argument("--dir", default=None, help="where to work (default: a temporary directory under /var/tmp)")
    p.add_argument("--python", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable,
                   help="interpreter for the seeder (default: the system python3, as in an image)")
    p.add_argument("--fsync", action="store_true", help="also compare the durable modes")
    p.add_argument("--no-strace", action="store_true")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="write the results as JSON to FILE (alone: print JSON instead of the table)")
    p.add_argument("--keep", action="store_true", help="keep the directories afterwards")
    d = p.add_argument_group("course delivery on the emulated cluster (--delivery)")
    d.add_argument("--delivery", action="store_true",
                   help="time pod create -> Ready for each course delivery mode against no course (see above)")
    d.add_argument("--rounds", type=int, default=6, help="rounds of every mode, in ABBA order (default 6)")
    d.add_argument("--timeout", type=float, default=300, help="seconds a pod may take to be Ready")
    d.add_argument("--image-volume-copy", action="store_true",
                   help="let the emulated kubelet copy the course into every image volume (its own model; a real "
                        "node mounts the unpacked image), instead of hard-linking it")
    args = p.parse_args()
    if args.delivery:
        return delivery_main(args)

    work = tempfile.mkdtemp(prefix="seeder-bench-", dir=args.dir or "/var/tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = install_like_an_image(work, args.python)
    tools = ["cp -r", "rsync -a --ignore-existing", "seeder", "seeder, indexed image"] + (
        ["cp -r && sync", "seeder --fsync", "seeder --fsync, indexed image"] if args.fsync else [])
    use_strace = not args.no_strace and shutil.which("strace") is not None
    info = machine(work)
    info["python"] = subprocess.run([args.python, "-c", "import platform; print(platform.python_version())"],
                                    capture_output=True, text=True).stdout.strip() + " (%s)" % args.python
    results: dict = {"files": args.files, "bytes": args.size, "machine": info, "work": work,
                     "command": " ".join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:]), "tools": {}}
    try:
        src = os.path.join(work, "course")
        make_course(src, args.files, args.size)
        # The same tree (hard links: same bytes, same mtimes) with the index an image build would add.
        subprocess.run(["cp", "-al", src, src + "-indexed"], check=True)
        subprocess.run([args.python, "-m", "jupyterhub_ext.seeder", "--source", src + "-indexed", "--write-index"],
                       check=True, env=env)
        subprocess.run(["sync"])
        n = 0

        def fresh() -> str:
            nonlocal n
            n += 1
            d = os.path.join(work, "home%03d" % n)
            os.mkdir(d)
            return d

        times = {t: {"cold": [], "warm": [], "cold_cpu": [], "warm_cpu": []} for t in tools}
        for _ in range(args.repeat):
            for tool in tools:
                dst = fresh()
                cmd = commands(src, dst, args.python)[tool]
                for phase in ("cold", "warm"):
                    subprocess.run(["sync"])
                    wall, cpu = run(cmd, env)
                    times[tool][phase].append(round(wall, 4))
                    times[tool][phase + "_cpu"].append(round(cpu, 4))
        floor = []
        for _ in range(args.repeat):  # the least any warm run must do: stat every file of both trees
            floor.append(run(["find", src, dst, "-type", "f", "-printf", "%s\n"], env)[0])  # %s: a stat each
        results["find_both_trees_s"] = statistics.median(floor)
        for tool in tools:
            t = times[tool]
            entry = results["tools"][tool] = {
                "cold_s": statistics.median(t["cold"]), "warm_s": statistics.median(t["warm"]),
                "cold_best_s": min(t["cold"]), "warm_best_s": min(t["warm"]),
                "cold_cpu_s": statistics.median(t["cold_cpu"]), "warm_cpu_s": statistics.median(t["warm_cpu"]),
                "cold_runs": t["cold"], "warm_runs": t["warm"],
            }
            if use_strace:
                for phase in ("cold", "warm"):
                    dst = fresh()
                    cmd = commands(src, dst, args.python)[tool]
                    if phase == "warm":
                        run(cmd, env)
                    counts = strace_counts(cmd, env, os.path.join(work, "strace-c.txt"))
                    entry[phase + "_syscalls_per_file"] = round(sum(counts.values()) / args.files, 2)
                    entry[phase + "_top_syscalls"] = dict(sorted(counts.items(), key=lambda kv: -kv[1])[:8])
                    if phase == "cold":  # a fresh home again: the counting run above filled this one
                        dst = fresh()
                        cmd = commands(src, dst, args.python)[tool]
                    tool_src = src + "-indexed" if "indexed" in tool else src
                    io = strace_io(cmd, env, os.path.join(work, "trace.txt"), tool_src, dst)
                    entry[phase + "_data_bytes"] = io["data_bytes"]
                    entry[phase + "_state_bytes"] = io["state_bytes"]
                    entry[phase + "_stats_per_file"] = {"source": round(io["src_stats"] / args.files, 3),
                                                        "home": round(io["dst_stats"] / args.files, 3)}
        base = results["tools"]["cp -r"]
        for tool, entry in results["tools"].items():
            entry["cold_vs_cp"] = round(entry["cold_s"] / base["cold_s"], 3)
            entry["cold_best_vs_cp_best"] = round(entry["cold_best_s"] / base["cold_best_s"], 3)
            entry["warm_vs_own_cold"] = round(entry["warm_s"] / entry["cold_s"], 4)
            entry["warm_best_vs_own_cold_best"] = round(entry["warm_best_s"] / entry["cold_best_s"], 4)
        results["load_average"] = os.getloadavg()
        if "cp -r && sync" in results["tools"]:
            for tool in ("seeder --fsync", "seeder --fsync, indexed image"):
                results["tools"][tool]["cold_best_vs_cp_sync_best"] = round(
                    results["tools"][tool]["cold_best_s"] / results["tools"]["cp -r && sync"]["cold_best_s"], 3)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json == "-":
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
                f.write("\n")
        print_table(results)
    return 0


def print_table(results: dict) -> None:
    m = results["machine"]
    print("%d files, %.0f MiB; %s, %s CPUs, %s GiB, kernel %s, %s; Python %s" % (
        results["files"], results["bytes"] / (1 << 20), m.get("cpu", "?"), m.get("cpus"), m.get("memory_gib"),
        m.get("kernel"), m.get("filesystem", "?"), m.get("python")))
    head = ("tool", "cold s best/med", "x cp -r best/med", "cold cpu s", "warm s best/med", "warm/cold best/med",
            "cold MB written", "warm bytes (+own state)", "syscalls/file cold", "warm", "warm file stats/file src+home")
    rows = []
    for tool, e in results["tools"].items():
        warm_bytes = e.get("warm_data_bytes")
        rows.append((
            tool, "%.3f / %.3f" % (e["cold_best_s"], e["cold_s"]),
            "%.2f / %.2f" % (e["cold_best_vs_cp_best"], e["cold_vs_cp"]), "%.3f" % e["cold_cpu_s"],
            "%.3f / %.3f" % (e["warm_best_s"], e["warm_s"]),
            "%.1f%% / %.1f%%" % (100 * e["warm_best_vs_own_cold_best"], 100 * e["warm_vs_own_cold"]),
            "%.1f" % (e["cold_data_bytes"] / 1e6) if "cold_data_bytes" in e else "-",
            ("%d (+%d)" % (warm_bytes, e["warm_state_bytes"])) if warm_bytes is not None else "-",
            str(e.get("cold_syscalls_per_file", "-")), str(e.get("warm_syscalls_per_file", "-")),
            ("%(source)g + %(home)g" % e["warm_stats_per_file"]) if "warm_stats_per_file" in e else "-",
        ))
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print("floor for any warm run (find stat-ing both trees): %.3f s; load average at the end: %s"
          % (results["find_both_trees_s"], " ".join("%.1f" % x for x in results.get("load_average", ()))))

# -- course delivery on the emulated cluster (--delivery) ------------------------------------------------------------

NAMESPACE = "bench"
POD = "jupyter-bench"
COURSE_NAME = "cs101"
USER_IMAGE = "quay.io/jupyter/pyspark-notebook:2025-10-13"    # third-party: no seeder, no course, no package
OWN_USER_IMAGE = "ghcr.io/example-org/jupyterhub-ext-singleuser:0.1.0"  # images/singleuser: course + seeder
COURSE_IMAGE = "ghcr.io/uni/cs101-course:2026-12-07"             # images/course: /course + /opt/course-seeder
USER_COURSE_DIR = "/opt/course"                                  # where images/singleuser has the course
MODES = ("no course", "init-container", "image-volume", "postStart")
ALONE = "seeder alone"  # no pod: the same seeder run directly on this machine, the yardstick of the delivery
STATUS = re.compile(r"course-seeder status=(\S+) (.*)")


def course_files(root: str) -> dict[str, int]:
    """Relative path -> size of every regular file of a course tree or a seeded folder, the seeder's own files
    (its state directory, an image's hash index) left out."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".course-seeder"]
        for name in filenames:
            if name.startswith(".course-seeder"):
                continue
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = os.lstat(path).st_size
    return out


def tree_metadata(work: str) -> dict[str, tuple]:
    """(uid, gid, mode, size, mtime) of every file and directory of the images' trees (course, site)."""
    out = {}
    for top in ("course", "site"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(work, top)):
            for name in [""] + filenames:
                st = os.lstat(os.path.join(dirpath, name))
                out[os.path.join(dirpath, name)] = (st.st_uid, st.st_gid, st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def seeder_status(folder: str) -> list[dict]:
    """The seeder's summary lines in the home (oldest first), each as its key=value fields."""
    try:
        with open(os.path.join(folder, ".course-seeder", "seeder.log")) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        m = STATUS.search(line)
        if m:
            fields = dict(kv.split("=", 1) for kv in m.group(2).split() if "=" in kv)
            out.append({"status": m.group(1), **fields})
    return out


def check_home(mode: str, phase: str, home: str, course: str, expected: dict[str, int], sample: list[str],
               starts: int, pod: dict) -> dict:
    """Fail unless the home is what the start must have left: the whole course after a delivering start (same
    files, sizes, sampled contents, owned by the user, a new ok status line), nothing of it without a course."""
    folder = os.path.join(home, COURSE_NAME)
    if mode == "no course":
        if os.path.exists(folder):
            raise AssertionError(f"{mode}, {phase}: {folder} exists, but no course was delivered")
        return {}
    problems = []
    for s in pod["status"].get("initContainerStatuses") or []:
        term = s["state"].get("terminated") or {}
        if term.get("exitCode") != 0:
            problems.append(f"init container {s['name']} state {s['state']}")
    got = course_files(folder) if os.path.isdir(folder) else {}
    if got != expected:
        missing = sorted(set(expected) - set(got))
        wrong = sorted(k for k in expected if k in got and got[k] != expected[k])
        problems.append(f"{len(got)} of {len(expected)} files in the home ({len(missing)} missing, e.g. "
                        f"{missing[:3]}; {len(wrong)} of the wrong size, e.g. {wrong[:3]}; "
                        f"{len(set(got) - set(expected))} extra)")
    else:
        for rel in sample:
            with open(os.path.join(course, rel), "rb") as a, open(os.path.join(folder, rel), "rb") as b:
                if a.read() != b.read():
                    problems.append(f"{rel} differs from the course's")
        st = os.stat(os.path.join(folder, sample[0]))
        if (st.st_uid, st.st_gid) != (1000, 100):
            problems.append(f"{sample[0]} is owned by {st.st_uid}:{st.st_gid}, not the user 1000:100")
    lines = seeder_status(folder)
    last = lines[-1] if lines else {}
    if len(lines) != starts:
        problems.append(f"{len(lines)} seeder status lines after {starts} starts")
    elif last.get("status") != "ok" or last.get("errors") != "0" or last.get("files") != str(len(expected)):
        problems.append(f"the seeder's last status line: {last}")
    elif phase == "first" and last.get("added") != str(len(expected)):
        problems.append(f"first start added {last.get('added')} of {len(expected)} files")
    elif phase == "restart" and (last.get("added"), last.get("updated"), last.get("written")) != ("0", "0", "0"):
        problems.append(f"an unchanged restart changed the home: {last}")
    if problems:
        raise AssertionError(f"{mode}, {phase} start: " + "; ".join(problems))
    return {"seeder_took_s": float(last.get("took", "nan").rstrip("s"))}


class ReadyTimes:
    """The moments (perf_counter) a pod's conditions turned true, from the store's own change feed: no polling,
    no API round trip between the kubelet's status write and the clock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.name = ""
        self.seen: dict[str, float] = {}
        self.ready = threading.Event()
        self.cpu_at_ready = os.times()

    def expect(self, name: str) -> None:
        with self.lock:
            self.name, self.seen = name, {}
            self.ready.clear()

    def __call__(self, plural: str, change) -> None:  # on the cluster's loop, synchronously
        if plural != "pods" or change.type == "DELETED":
            return
        pod = change.obj
        if pod["metadata"]["name"] != self.name or pod["metadata"].get("deletionTimestamp"):
            return
        now = time.perf_counter()
        with self.lock:
            for cond in (pod.get("status") or {}).get("conditions") or []:
                if cond.get("status") == "True":
                    self.seen.setdefault(cond["type"], now)
            if "Ready" in self.seen and not self.ready.is_set():
                self.cpu_at_ready = os.times()
                self.ready.set()


def link_image_volumes(kubelet, setup: list[float], copy: bool) -> None:
    """Time the emulated kubelet's image-volume set-up, and (unless ``copy``) make it hard-link the image's
    files instead of copying them into every pod's volume: a real node mounts the image it unpacked once (with
    the pull), which costs a pod start nothing per file. Hard links are the same files (bytes, modes, mtimes),
    still read-only in the container, so the seeder sees exactly what the copy would give it."""
    original = kubelet._image_volume

    def image_volume(rt, name, source):
        started = time.perf_counter()
        path = os.path.join(rt.dir, "volumes", "kubernetes.io~image", name)
        fresh = not os.path.isdir(path)
        if copy or not fresh:
            result = original(rt, name, source)
        else:
            os.makedirs(path)
            for inside, src in kubelet.image_config(source.get("reference", "")).content.items():
                # __pycache__ kept: images/course byte-compiles the seeder (the harness' copy drops it)
                shutil.copytree(src, path + os.path.normpath(inside), symlinks=True, copy_function=os.link)
            # Kubernetes applies no fsGroup to an image volume (read-only, mounted by the runtime); the emulated
            # kubelet would chgrp/chmod every file, and through hard links the image's own files. Its root in
            # the pod's group makes it skip the walk (fsGroupChangePolicy OnRootMismatch).
            fs_group = (kubelet._pod(rt)["spec"].get("securityContext") or {}).get("fsGroup")
            if fs_group is not None:
                os.chown(path, -1, fs_group)
            rt.read_only_volumes.add(name)
            result = path
        if fresh:
            setup.append(time.perf_counter() - started)
        return result

    kubelet._image_volume = image_volume


def delivery_pod(mode: str, subpath: str, python: str) -> tuple[dict, dict]:
    """A notebook pod as the chart has it (the user's uid/gid, the home a subPath of the EFS claim), with the
    course parts that the spawner's own planner gives ``mode``. Returns (pod, what was delivered how)."""
    # (not courses.kube: it imports KubeSpawner, seconds on a busy machine; its course_init_resources are left
    # out, as the emulated kubelet enforces no CPU or memory limits)
    from jupyterhub_ext.courses.model import Course
    from jupyterhub_ext.courses.plan import CoursePlan, Delivery, Home, plan_courses, post_start_command

    home_mount = {"name": "home", "mountPath": "/home/jovyan", "subPath": subpath}
    plan = CoursePlan()
    image = USER_IMAGE
    if mode != "no course":
        if mode == "postStart":
            course, image = Course(COURSE_NAME, "path", USER_COURSE_DIR, COURSE_NAME), OWN_USER_IMAGE
        else:
            course = Course(COURSE_NAME, "image", COURSE_IMAGE, COURSE_NAME)
        delivery = Delivery(mode="image-volume" if mode == "image-volume" else "init-container", uid=1000, gid=100,
                            python=python)
        plan = plan_courses([course], Home("/home/jovyan", home_mount), delivery)
    env = {"JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/bench/", "JUPYTERHUB_SERVICE_PREFIX": "/user/bench/",
           "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api", "JUPYTERHUB_API_TOKEN": "bench",
           "JUPYTERHUB_USER": "bench"}
    container = {
        "name": "notebook", "image": image, "imagePullPolicy": "IfNotPresent",
        "args": ["jupyterhub-singleuser"], "env": [{"name": k, "value": v} for k, v in env.items()],
        "ports": [{"name": "notebook-port", "containerPort": 8888}], "workingDir": "/home/jovyan",
        "securityContext": {"runAsUser": 1000, "runAsGroup": 100, "allowPrivilegeEscalation": False},
        "volumeMounts": [home_mount, *plan.volume_mounts.values()],
    }
    hook = post_start_command(plan.post_start)
    if hook is not None:
        container["lifecycle"] = {"postStart": {"exec": {"command": hook}}}
    spec = {"containers": [container], "restartPolicy": "OnFailure", "terminationGracePeriodSeconds": 1,
            "securityContext": {"fsGroup": 100},
            "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "efs-home"}},
                        *plan.volumes.values()]}
    if plan.init_containers:
        spec["initContainers"] = list(plan.init_containers.values())
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": POD, "namespace": NAMESPACE,
                        "labels": {"app": "jupyterhub", "component": "singleuser-server"}},
           "spec": spec}
    return pod, dict(plan.delivered)


def delivery_main(args) -> int:
    import common
    from tests.harness import DEFAULT_COMMAND_MAP, STANDIN_COMMAND, EmulatedCluster, ImageConfig, make_node
    from tests.harness.kubelet import probe_isolation
    from tests.harness.platform import efs_objects

    import jupyterhub_ext

    if probe_isolation() != "namespaces":
        print("--delivery needs the kubelet's mount namespaces (root with CAP_SYS_ADMIN, as the end-to-end tests): "
              "without them a container cannot see a course image's /course", file=sys.stderr)
        return 2
    m = common.machine()
    python_version = subprocess.run([args.python, "-c", "import platform; print(platform.python_version())"],
                                    capture_output=True, text=True).stdout.strip()
    work = tempfile.mkdtemp(prefix="seeder-delivery-", dir=args.dir or "/var/tmp")
    os.chmod(work, 0o755)  # the containers run as the user (1000): the images' files must be readable
    package_dirs = sorted({os.path.join(REPO, "jupyterhub_ext"),
                           os.path.dirname(os.path.abspath(jupyterhub_ext.__file__))})
    cluster = None
    try:
        site = install_like_an_image(work, args.python)  # the seeder as both images install it, byte-compiled
        course = os.path.join(work, "course")
        make_course(course, args.files, args.size)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONPATH"] = site
        # both images record the course's hashes at build time (images/course, images/singleuser)
        subprocess.run([args.python, "-m", "jupyterhub_ext.seeder", "--source", course, "--write-index"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        for dirpath, dirnames, filenames in os.walk(work):  # an image's files are readable by every user
            os.chmod(dirpath, 0o755)
            for f in filenames:
                os.chmod(os.path.join(dirpath, f), 0o644)
        expected = course_files(course)
        image_before = tree_metadata(work)  # nothing a pod does may change an image's files
        rng = random.Random(11)
        sample = sorted(rng.sample(sorted(expected), min(50, len(expected))))
        path = ":".join([os.path.dirname(args.python), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
        seeder_dir = os.path.join(site, "jupyterhub_ext", "seeder")
        images = {
            # a third-party user image: none of this package, no seeder, no course
            USER_IMAGE: ImageConfig(lacks=package_dirs, env={"PATH": path}),
            # images/singleuser: the course at /opt/course, the seeder importable by the image's python3
            OWN_USER_IMAGE: ImageConfig(content={USER_COURSE_DIR: course, "/opt/jupyterhub-ext": site},
                                        env={"PATH": path, "PYTHONPATH": "/opt/jupyterhub-ext"}, lacks=package_dirs),
            # images/course: the course at /course, the stdlib seeder at /opt/course-seeder/seeder, python3
            COURSE_IMAGE: ImageConfig(content={"/course": course, "/opt/course-seeder/seeder": seeder_dir},
                                      env={"PATH": path, "PYTHONDONTWRITEBYTECODE": "1"}, lacks=package_dirs,
                                      working_dir="/course", dirs={}),
        }
        cluster = EmulatedCluster(
            data_dir=os.path.join(work, "cluster"), pools=[], nodes=[make_node("bench-node", cpu=8, memory="32Gi")],
            namespaces=(NAMESPACE,), images=images, feature_gates=("ImageVolume",),
            command_map={**DEFAULT_COMMAND_MAP, "jupyterhub-singleuser": STANDIN_COMMAND}).start()
        volume_setup: list[float] = []
        cluster.call(lambda: link_image_volumes(cluster.kubelet, volume_setup, args.image_volume_copy))
        for plural, body in efs_objects(NAMESPACE):  # the shipped EKS homes: one EFS claim, a subPath per user
            cluster.create(plural, body, body["metadata"].get("namespace"))
        claim = cluster.wait_for(lambda: cluster.claim_dir(NAMESPACE, "efs-home") if (cluster.get(
            "persistentvolumeclaims", "efs-home", NAMESPACE).get("status") or {}).get("phase") == "Bound" else None,
            30, what="the home claim bound")
        times = ReadyTimes()
        cluster.call(lambda: cluster.store.subscribe(times))

        def start(mode: str, subpath: str) -> dict:
            pod, delivered = delivery_pod(mode, subpath, "python3")
            subprocess.run(["sync"])  # the previous home's writes are not this start's to pay
            times.expect(POD)
            c0 = os.times()
            t0 = time.perf_counter()
            cluster.create("pods", pod, NAMESPACE)
            if not times.ready.wait(args.timeout):
                found = cluster.find("pods", POD, NAMESPACE)
                raise RuntimeError(f"{mode}: not Ready after {args.timeout} s: status="
                                   f"{json.dumps((found or {}).get('status'))} events="
                                   f"{cluster.event_messages(NAMESPACE, POD)}")
            with times.lock:
                seen, c1 = dict(times.seen), times.cpu_at_ready
            # CPU, which a shared machine distorts least: of the processes that ended before Ready (the init
            # container, the postStart exec, each as a whole tree: everything the course's delivery ran; the
            # notebook's own process is still running and counted in no mode), and of this process (the
            # emulated API server and kubelet, e.g. setting up an image volume)
            pods_cpu = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
            own_cpu = (c1.user - c0.user) + (c1.system - c0.system)
            return {"ready_s": seen["Ready"] - t0, "initialized_s": seen.get("Initialized", seen["Ready"]) - t0,
                    "delivery_cpu_s": pods_cpu, "kubelet_cpu_s": own_cpu,
                    "pod": cluster.get("pods", POD, NAMESPACE), "delivered": delivered}

        def stop() -> None:
            cluster.delete("pods", POD, NAMESPACE, grace_period_seconds=1)
            cluster.wait_gone("pods", POD, NAMESPACE, timeout=60)

        def alone(dest: str) -> dict:
            """The same seeder on the same trees as a plain process of this machine, as the user: no pod."""
            subprocess.run(["sync"])
            c0, t0 = os.times(), time.perf_counter()
            subprocess.run([args.python, "-m", "jupyterhub_ext.seeder", "--source", course, "--dest", dest],
                           check=True, env=env, stdout=subprocess.DEVNULL, user=1000, group=100, extra_groups=[])
            wall, c1 = time.perf_counter() - t0, os.times()
            return {"ready_s": wall, "initialized_s": wall, "kubelet_cpu_s": 0.0, "pod": {"status": {}},
                    "delivered": {},
                    "delivery_cpu_s": (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)}

        everything = MODES + (ALONE,)
        runs = {mode: {phase: [] for phase in ("first", "restart")} for mode in everything}
        order = []
        delivered_how = {}
        n = 0
        for r in range(args.rounds):
            modes = everything if r % 2 == 0 else tuple(reversed(everything))  # ABBA: drift hits all alike
            order.append(list(modes))
            for mode in modes:
                n += 1
                subpath = "bench-%03d" % n
                home = os.path.join(claim, subpath)
                if mode == ALONE:
                    os.makedirs(os.path.join(home, COURSE_NAME))
                    for d in (home, os.path.join(home, COURSE_NAME)):
                        os.chown(d, 1000, 100)
                for starts, phase in enumerate(("first", "restart"), 1):
                    volumes_before = len(volume_setup)
                    got = alone(os.path.join(home, COURSE_NAME)) if mode == ALONE else start(mode, subpath)
                    extra = check_home(mode, phase, home, course, expected, sample, starts, got["pod"])
                    delivered_how[mode] = got["delivered"].get(COURSE_NAME, "-")
                    if mode != ALONE:
                        stop()
                    entry = {"round": r + 1, "ready_s": round(got["ready_s"], 4),
                             "initialized_s": round(got["initialized_s"], 4),
                             "delivery_cpu_s": round(got["delivery_cpu_s"], 3),
                             "kubelet_cpu_s": round(got["kubelet_cpu_s"], 3), **extra}
                    if len(volume_setup) > volumes_before:
                        entry["image_volume_setup_s"] = round(sum(volume_setup[volumes_before:]), 4)
                    runs[mode][phase].append(entry)
                    print("round %d %-14s %-7s ready %.3f s, CPU %.3f s%s" % (
                        r + 1, mode, phase, got["ready_s"], got["delivery_cpu_s"],
                        " (seeder %.2f s)" % extra["seeder_took_s"] if extra else ""), file=sys.stderr, flush=True)
        changed = [k for k, v in tree_metadata(work).items() if image_before.get(k, v) != v]
        if changed:
            raise AssertionError(f"the images' files changed during the run (owner, mode, size or mtime): "
                                 f"{len(changed)}, e.g. {changed[:3]}")
        results = delivery_results(runs, args, order, delivered_how)
        results["machine"] = {"python_seeder": "%s (%s)" % (python_version, args.python), "work": work,
                              "filesystem": machine(work).get("filesystem")}
    finally:
        if cluster is not None:
            cluster.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    doc = common.report("seeder --delivery", args, results, m)
    if args.json == "-":
        json.dump(doc, sys.stdout, indent=2, default=str)
        print()
        return 0
    common.write_json(args.json, doc)
    print_delivery(doc)
    return 0


def delivery_results(runs: dict, args, order: list, delivered_how: dict) -> dict:
    def stats(entries: list[dict], key: str) -> dict:
        vals = [e[key] for e in entries if key in e]
        return {"best": min(vals), "median": statistics.median(vals), "runs": vals} if vals else {}

    modes = {}
    for mode in MODES + (ALONE,):
        modes[mode] = {"delivered_by": delivered_how.get(mode, "-")}
        for phase in ("first", "restart"):
            e = runs[mode][phase]
            modes[mode][phase] = {"ready_s": stats(e, "ready_s"), "initialized_s": stats(e, "initialized_s"),
                                  "delivery_cpu_s": stats(e, "delivery_cpu_s"),
                                  "kubelet_cpu_s": stats(e, "kubelet_cpu_s"),
                                  "seeder_took_s": stats(e, "seeder_took_s"),
                                  "image_volume_setup_s": stats(e, "image_volume_setup_s"), "runs": e}
            if mode == ALONE:
                continue
            base = runs["no course"][phase]
            # the delivery's cost: over the same pod without a course, per round (paired) and of best and median
            paired = [a["ready_s"] - b["ready_s"] for a, b in zip(e, base)]
            modes[mode][phase]["added_s"] = {
                "best": modes[mode][phase]["ready_s"]["best"] - min(x["ready_s"] for x in base),
                "median": modes[mode][phase]["ready_s"]["median"] - statistics.median(x["ready_s"] for x in base),
                "paired_median": statistics.median(paired), "paired_runs": [round(x, 4) for x in paired]}
    for mode in MODES[1:]:  # what the pod adds to the seeder's own run: containers, hooks, mounts
        for phase in ("first", "restart"):
            modes[mode][phase]["over_seeder_alone_median_s"] = (
                modes[mode][phase]["added_s"]["median"] - modes[ALONE][phase]["ready_s"]["median"])
    ratios = {}
    for mode in ("init-container", "image-volume"):
        for phase in ("first", "restart"):
            a, b = modes[mode][phase], modes["postStart"][phase]
            ratios[f"{mode}/postStart"] = ratios.get(f"{mode}/postStart", {})
            ratios[f"{mode}/postStart"][phase] = {
                "ready_best": common_ratio(a["ready_s"]["best"], b["ready_s"]["best"]),
                "ready_median": common_ratio(a["ready_s"]["median"], b["ready_s"]["median"]),
                "added_best": common_ratio(a["added_s"]["best"], b["added_s"]["best"]),
                "added_median": common_ratio(a["added_s"]["median"], b["added_s"]["median"]),
                "delivery_cpu_median": common_ratio(a["delivery_cpu_s"]["median"], b["delivery_cpu_s"]["median"]),
            }
    return {"files": args.files, "bytes": args.size, "rounds": args.rounds, "order": order, "modes": modes,
            "ratios": ratios, "checked": "after every start: the course's files and sizes in the home, 50 sampled "
                                        "contents, owner 1000:100, the seeder's status line (ok, all added on a "
                                        "first start, nothing written on a restart); no course folder without one",
            "image_volume": "copied by the emulated kubelet" if args.image_volume_copy
            else "hard links to the image's files (a real node mounts the unpacked image)"}


def common_ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b and b > 0 else None


def print_delivery(doc: dict) -> None:
    import common

    r = doc["results"]
    print("%d files, %.0f MiB, %d rounds (ABBA), pod create -> Ready; %s; seeder Python %s; %s" % (
        r["files"], r["bytes"] / (1 << 20), r["rounds"], common.machine_line(doc["machine"]),
        r["machine"]["python_seeder"], r["machine"].get("filesystem")))

    def bm(d: dict) -> str:
        return "%.3f / %.3f" % (d["best"], d["median"]) if d else "-"

    rows = []
    for mode, e in r["modes"].items():
        row = [mode]
        for phase in ("first", "restart"):
            p = e[phase]
            row += [bm(p["ready_s"]), bm(p["added_s"]) if "added_s" in p and mode != "no course" else "-",
                    bm(p["seeder_took_s"]), "%.3f" % p["delivery_cpu_s"]["median"]]
        rows.append(row)
    print(common.table(["delivery", "first start s (best / median)", "+ over no course", "seeder's own",
                        "delivery CPU s", "unchanged restart s", "+ over no course", "seeder's own",
                        "delivery CPU s"], rows))
    print("seeder alone: the same seeder on the same trees as a plain process, as the user, no pod (its wall time "
          "in the first columns); delivery CPU: of the processes that ended before Ready")
    print()
    rows = []
    for name, by_phase in r["ratios"].items():
        for phase, x in by_phase.items():
            rows.append([name, phase, x["ready_best"], x["ready_median"], x["added_best"], x["added_median"],
                         x["delivery_cpu_median"]])
    print(common.table(["ratio", "start", "create -> Ready, best", "median", "added over no course, best",
                        "median", "delivery CPU, median"], rows))
    setup = r["modes"]["image-volume"]["first"]["image_volume_setup_s"]
    if setup:
        print("image volume: %s; its set-up by the emulated kubelet, median %.3f s"
              % (r["image_volume"], setup["median"]))
    print("load average at the end: %s" % doc.get("load_average_at_end"))


if __name__ == "__main__":
    sys.exit(main())
