#!/usr/bin/env python3
"""Benchmark: the course seeder against `cp -r` and `rsync -a --ignore-existing` (not a test).

    python benchmarks/seeder.py                      # 5,000 files / 500 MB, table on stdout
    python benchmarks/seeder.py --files 500 --size 50M --json

For each tool: a cold seed into an empty home and a warm re-seed (nothing changed), each repeated into fresh
directories (best and median wall time reported, runs interleaved so drift hits every tool alike); then
extra runs of each under `strace -c -f` (system calls per file) and `strace -f -y` (bytes written into the
home, stat calls on the trees' files). "indexed image" is the same course with the hash index an image build
writes (`--write-index`). With --fsync the durable modes are compared too, against `cp -r && sync`.

Nothing is deleted between timed runs: on filesystems mounted with `discard`, freeing blocks right before a
copy slows that copy down by several times, which would penalise whichever tool runs next.
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
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--keep", action="store_true", help="keep the directories afterwards")
    args = p.parse_args()

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
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
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


if __name__ == "__main__":
    sys.exit(main())
