"""Runs that die, disks that fill up, locks, budgets: nothing the student wrote is ever lost or half-written."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from jupyterhub_ext.seeder import fsops, notice
from jupyterhub_ext.seeder.index import write_index

from .conftest import (
    DATE, Counter, DiskFullAfter, Kill, KillAt, read, seed, snapshot, temp_files, write_tree,
)

BIG = bytes(range(256)) * 40  # 10 KiB: several chunks once CHUNK is made small


@pytest.fixture
def small_chunks(monkeypatch):
    # Copies in 1 KiB chunks, so a kill or a full disk can land between two writes of one file.
    monkeypatch.setattr(fsops, "CHUNK", 1024)


def prepare(base: str, indexed: bool = False) -> dict:
    """A home seeded with v1, then used by a student, and a course that moved on to v2 (with its index of
    hashes, if ``indexed``: then copies go through the kernel rather than through Python)."""
    course, home, outside = (os.path.join(base, n) for n in ("course", "home", "outside"))
    for d in (course, home, outside):
        os.makedirs(d)
    write_tree(outside, {"secret.txt": "outside"})
    write_tree(course, {
        "untouched.txt": "u1", "edited.ipynb": "e1", "deleted.txt": "d1", "withdrawn.txt": "w1",
        "big/data.bin": BIG, "modes.sh": ("echo\n", 0o644), "keep/withdrawn-edited.txt": "k1",
    })
    assert seed(course, home).status == "ok"
    write_tree(home, {"edited.ipynb": "e1 + the student's answers", "keep/withdrawn-edited.txt": "k1 + notes",
                      "new.txt": "the student's own new.txt", "mine/notes.md": "notes"})
    os.unlink(os.path.join(home, "deleted.txt"))
    write_tree(course, {"untouched.txt": "u2", "edited.ipynb": "e2", "new.txt": "course new.txt",
                        "big/data.bin": BIG[::-1], "added/lab.ipynb": "lab"})
    os.chmod(os.path.join(course, "modes.sh"), 0o755)
    os.unlink(os.path.join(course, "withdrawn.txt"))
    os.unlink(os.path.join(course, "keep/withdrawn-edited.txt"))
    if indexed:
        assert write_index(course) == []
    return {"course": course, "home": home, "outside": outside}


STUDENT = {
    "edited.ipynb": b"e1 + the student's answers",
    "keep/withdrawn-edited.txt": b"k1 + notes",
    "new.txt": b"the student's own new.txt",
    "mine/notes.md": b"notes",
}
# Everything a complete file in the home may hold: a course version or the student's bytes.
ALLOWED = {b"u1", b"u2", b"e1", b"e2", b"d1", b"w1", b"k1", BIG, BIG[::-1], b"echo\n", b"course new.txt",
           b"lab"} | set(STUDENT.values())


def check_safe(d: dict, *, killed: bool) -> None:
    home = d["home"]
    for rel, content in STUDENT.items():
        assert read(home, rel) == content, rel
    for rel, (kind, value, _mode) in snapshot(home, skip_state=True).items():
        if rel == notice.NOTICE_NAME:  # the student's notice: whole, as the seeder composes it
            assert value.startswith(notice.MARK.encode()) and value.endswith(b".\n"), value[-80:]
        elif kind == "file" and not os.path.basename(rel).startswith(".~sd"):
            assert value in ALLOWED, (rel, value[:40])  # never a partial file
    assert snapshot(d["outside"]) == {"secret.txt": ("file", b"outside", 0o644)}
    if not killed:
        assert temp_files(home) == []


def check_nothing_removed(before: dict, after: dict, expected: dict) -> None:
    """A run that hit a full disk, checked before anything runs again (a re-run would restore a wrongly
    deleted course copy and hide it). ``before``/``after``: the home around that run; ``expected``: the home
    after a complete run. Every entry present before is still there, with its bytes and mode, or as the
    complete run leaves it (an untouched copy updated, a mode the course changed); the only ones allowed to be
    gone are those the complete run removes too (withdrawn and byte-identical to what was seeded). Whatever is
    new is exactly what the complete run puts there."""
    for rel, was in before.items():
        now = after.get(rel)
        if rel in expected:
            assert now is not None, "%s was removed by a run that hit a full disk" % rel
            assert now in (was, expected[rel]), (rel, was[:2], now[:2])
        else:
            assert now in (None, was), (rel, was[:2], now and now[:2])
    for rel in set(after) - set(before):
        assert after[rel] == expected.get(rel), (rel, after[rel][:2])


def without_notice(tree: dict) -> dict:
    return {rel: entry for rel, entry in tree.items() if rel != notice.NOTICE_NAME}


def reference(base: str, indexed: bool = False) -> dict:
    d = prepare(base, indexed)
    assert seed(d["course"], d["home"]).status == "ok"
    return snapshot(d["home"], skip_state=True)


def assert_finishes_like(d: dict, expected: dict) -> None:
    summary = seed(d["course"], d["home"])
    assert summary.status == "ok", summary.errors
    check_safe(d, killed=False)
    # a run killed after its offers but before its notice leaves the news to the log of the run that finishes
    assert without_notice(snapshot(d["home"], skip_state=True)) == without_notice(expected)
    again = seed(d["course"], d["home"])
    assert again.bytes_written == 0 and not again.manifest_written  # converged


@pytest.mark.parametrize("indexed", [False, True], ids=["hashing-copy", "kernel-copy"])
def test_killed_at_every_operation(fast_tmp, small_chunks, indexed):
    expected = reference(os.path.join(fast_tmp, "ref"), indexed)
    d = prepare(os.path.join(fast_tmp, "count"), indexed)
    counter = Counter()
    seed(d["course"], d["home"], hook=counter)
    total = len(counter.ops)
    assert total > 50 and counter.count("write") > 5
    for n in range(1, total + 1):
        d = prepare(os.path.join(fast_tmp, "k%d" % n), indexed)
        with pytest.raises(Kill):
            seed(d["course"], d["home"], hook=KillAt(n))
        check_safe(d, killed=True)
        assert_finishes_like(d, expected)
        shutil.rmtree(os.path.join(fast_tmp, "k%d" % n))


def test_killed_twice_in_a_row(fast_tmp, small_chunks):
    expected = reference(os.path.join(fast_tmp, "ref"))
    for first, second in ((5, 5), (20, 3), (40, 60), (70, 12)):
        d = prepare(os.path.join(fast_tmp, "k%d-%d" % (first, second)))
        for n in (first, second):
            with pytest.raises(Kill):
                seed(d["course"], d["home"], hook=KillAt(n))
            check_safe(d, killed=True)
        assert_finishes_like(d, expected)


@pytest.mark.parametrize("indexed", [False, True], ids=["hashing-copy", "kernel-copy"])
def test_disk_full_at_every_write(fast_tmp, small_chunks, indexed):
    expected = reference(os.path.join(fast_tmp, "ref"), indexed)
    d = prepare(os.path.join(fast_tmp, "count"), indexed)
    counter = Counter()
    seed(d["course"], d["home"], hook=counter)
    writes = counter.count("write")
    for n in range(writes):
        d = prepare(os.path.join(fast_tmp, "f%d" % n), indexed)
        manifest_before = read(d["home"], ".course-seeder/manifest.json")
        before = snapshot(d["home"], skip_state=True)
        summary = seed(d["course"], d["home"], hook=DiskFullAfter(n))
        assert summary.status == "disk-full"
        check_safe(d, killed=False)  # no partial file, no temporary file, the student's bytes all there
        check_nothing_removed(before, snapshot(d["home"], skip_state=True), expected)
        if not summary.manifest_written:
            assert read(d["home"], ".course-seeder/manifest.json") == manifest_before
        assert_finishes_like(d, expected)
        shutil.rmtree(os.path.join(fast_tmp, "f%d" % n))


def test_full_tmpfs(tmp_path):
    """A real full filesystem: a 1 MiB tmpfs (we are root in this environment; skipped where mount fails).
    A home seeded earlier, then used; the course update does not fit. Nothing that was there is lost."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        course, home = tmp_path / "course", mnt / "home"
        home.mkdir()
        v1 = {"README.md": "readme v1", "lab.ipynb": "lab v1", "data/small.csv": "a,b\n1,2\n",
              "withdrawn.txt": "old", "run.sh": ("echo\n", 0o644)}
        write_tree(course, v1)
        assert seed(course, home).status == "ok"
        write_tree(home, {"my-work.ipynb": b"w" * 100_000, "lab.ipynb": "lab v1 + my answers"})
        big = {"data%d.bin" % i: os.urandom(300_000) for i in range(5)}  # 1.5 MB: cannot all fit
        write_tree(course, dict(big, **{"README.md": "readme v2", "lab.ipynb": "lab v2",
                                        "data/small.csv": "a,b\n1,2\n3,4\n"}))
        os.chmod(course / "run.sh", 0o755)
        os.unlink(course / "withdrawn.txt")
        expected = {  # what a complete run leaves (the offered copy's name has the run's date)
            "README.md": ("file", b"readme v2", 0o644), "lab.ipynb": ("file", b"lab v1 + my answers", 0o644),
            "lab.course-%s.ipynb" % DATE: ("file", b"lab v2", 0o644), "data": ("dir", None, 0o755),
            "data/small.csv": ("file", b"a,b\n1,2\n3,4\n", 0o644), "run.sh": ("file", b"echo\n", 0o755),
            "my-work.ipynb": ("file", b"w" * 100_000, 0o644),
        }
        expected.update({name: ("file", content, 0o644) for name, content in big.items()})

        for attempt in range(2):  # full, then still full: each time nothing half-done, nothing lost
            before = snapshot(home, skip_state=True)
            summary = seed(course, home)
            assert summary.status == "disk-full", summary.errors
            after = snapshot(home, skip_state=True)
            check_nothing_removed(before, after, expected)  # before anything runs again
            assert after["my-work.ipynb"] == expected["my-work.ipynb"]
            assert after["lab.ipynb"] == expected["lab.ipynb"]
            assert temp_files(home) == []
        present = [n for n in big if n in after]
        assert 0 < len(present) < len(big)  # it did fill up mid-way

        subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True)
        summary = seed(course, home)
        assert summary.status == "ok", summary.errors
        assert without_notice(snapshot(home, skip_state=True)) == without_notice(expected)
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_time_budget_stops_cleanly_and_the_next_start_finishes(fast_tmp):
    course, home = os.path.join(fast_tmp, "course"), os.path.join(fast_tmp, "home")
    write_tree(course, {"f%03d.txt" % i: "content %d" % i for i in range(60)})

    def slow(op: str, _path: str) -> None:
        if op == "create":
            time.sleep(0.05)  # a slow disk: about a dozen files fit in the budget

    summary = seed(course, home, hook=slow, time_budget=0.6)
    assert summary.status == "partial" and summary.counts["deferred"] > 0
    done = summary.counts["added"]
    assert 0 < done < 60 and temp_files(home) == []
    summary = seed(course, home)
    assert summary.status == "ok" and summary.counts["added"] == 60 - done
    assert summary.counts["adopted"] == 0  # what the first run did was recorded, not rediscovered


def test_warm_run_reads_and_writes_nothing(fast_tmp):
    course, home = os.path.join(fast_tmp, "course"), os.path.join(fast_tmp, "home")
    files = {"d%d/f%d.txt" % (i % 7, i): "x" * i for i in range(200)}
    write_tree(course, files)
    seed(course, home)
    manifest = os.path.join(home, ".course-seeder", "manifest.json")
    before = os.stat(manifest)
    counter = Counter()
    summary = seed(course, home, hook=counter)
    ops = {op for op, _ in counter.ops}
    assert ops <= {"stat", "opendir", "append"}, ops  # no open, read, create, write, rename, link, unlink
    assert counter.count("stat") == len(files)  # exactly one lstat per file in the home
    assert counter.count("opendir") <= 7 + 1
    after = os.stat(manifest)
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    assert summary.bytes_written == 0 and summary.status == "ok"


def test_new_image_same_content_reads_but_writes_nothing(fast_tmp):
    course, home = os.path.join(fast_tmp, "course"), os.path.join(fast_tmp, "home")
    write_tree(course, {"a.txt": "a", "b.txt": "b"})
    seed(course, home)
    for name in ("a.txt", "b.txt"):
        os.utime(os.path.join(course, name), ns=(10**18, 10**18))  # rebuilt image: new mtimes
    counter = Counter()
    summary = seed(course, home, hook=counter)
    course_writes = [(op, path) for op, path in counter.ops if op in ("create", "write", "rename", "link")
                     and path not in ("manifest.json", ".~sd%s-0.tmp" % path[4:12])]
    assert summary.bytes_written == 0 and course_writes == []
    assert summary.manifest_written  # only the hash cache learns the new mtimes...
    counter = Counter()
    seed(course, home, hook=counter)
    assert counter.count("open", "read") == 0  # ...so the next start reads nothing


# -- the lock ---------------------------------------------------------------------------------------------

HOLD_LOCK = textwrap.dedent("""
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    time.sleep(60)
""")


def hold_lock(home: str) -> subprocess.Popen:
    lock = os.path.join(home, ".course-seeder", "manifest.json.lock")
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, lock], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_live_lock_holder_makes_the_run_skip(fast_tmp):
    course, home = os.path.join(fast_tmp, "course"), os.path.join(fast_tmp, "home")
    write_tree(course, {"a.txt": "a"})
    os.makedirs(home)
    holder = hold_lock(home)
    try:
        started = time.monotonic()
        summary = seed(course, home, lock_timeout=0.3)
        assert summary.status == "locked" and time.monotonic() - started < 2
        assert not os.path.exists(os.path.join(home, "a.txt"))
        with open(os.path.join(home, ".course-seeder", "seeder.log")) as f:
            assert "status=locked" in f.read()
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_lock_holder_does_not_block(fast_tmp):
    course, home = os.path.join(fast_tmp, "course"), os.path.join(fast_tmp, "home")
    write_tree(course, {"a.txt": "a"})
    os.makedirs(home)
    holder = hold_lock(home)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    summary = seed(course, home, lock_timeout=30)
    assert summary.status == "ok" and time.monotonic() - started < 2
    assert read(home, "a.txt") == b"a"


# -- a real process, really killed --------------------------------------------------------------------------

def test_sigkill_mid_run(fast_tmp):
    course, home = os.path.join(fast_tmp, "course"), os.path.join(fast_tmp, "home")
    files = {"w%02d/f%04d.txt" % (i % 40, i): os.urandom(2000 + i) for i in range(3000)}
    files.update({"big%d.bin" % i: bytes([i]) * (3 << 20) for i in range(4)})
    write_tree(course, files)
    student = {"w00/f0000.txt": b"mine", "w01/f0001.txt": b"also mine", "notes.md": b"notes"}
    write_tree(home, student)
    cmd = [sys.executable, "-m", "jupyterhub_ext.seeder", "--source", course, "--dest", home]
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    # Kill each run once it has visibly copied part of the tree (fixed delays raced the seeder: on a quiet machine
    # the whole tree was done before the third kill). Progress is the number of names in the course's 40
    # directories of the home: one listdir each, cheap enough to poll.
    dirs = sorted({os.path.join(home, rel.split("/")[0]) for rel in files if "/" in rel})

    def progress() -> int:
        n = 0
        for d in dirs:
            try:
                n += len(os.listdir(d))
            except FileNotFoundError:
                pass
        return n

    killed_mid = 0
    for attempt in range(12):
        start = progress()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = start + 150 + 100 * (attempt % 3)  # different points of the run each time
        deadline = time.monotonic() + 60
        while proc.poll() is None and progress() < target and time.monotonic() < deadline:
            time.sleep(0.0005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        rc = proc.wait()
        for rel, content in student.items():
            assert read(home, rel) == content
        present = 0
        for rel, content in files.items():
            path = os.path.join(home, rel)
            if os.path.exists(path) and rel not in student:
                assert read(home, rel) == content, rel  # complete or absent, never partial
                present += 1
        if rc == -signal.SIGKILL and 0 < present < len(files) - len(student):
            killed_mid += 1
        if killed_mid >= 3:
            break
    assert killed_mid >= 3, "the runs finished before they could be killed mid-copy; make the tree bigger"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "status=ok" in done.stdout, done.stdout + done.stderr
    assert temp_files(home) == []
    for rel, content in files.items():
        assert read(home, rel) == (student.get(rel, content))
    for rel in ("w00/f0000.txt", "w01/f0001.txt"):
        base, ext = os.path.splitext(rel)
        assert read(home, "%s.course-%s%s" % (base, time.strftime("%Y-%m-%d", time.gmtime()), ext)) == files[rel]
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert "written=0" in again.stdout


def test_sigterm_stops_cleanly(fast_tmp):
    course, home = os.path.join(fast_tmp, "course"), os.path.join(fast_tmp, "home")
    write_tree(course, {"big%d.bin" % i: bytes([i]) * (8 << 20) for i in range(12)})
    cmd = [sys.executable, "-m", "jupyterhub_ext.seeder", "--source", course, "--dest", home, "--jobs", "1"]
    proc = subprocess.Popen(cmd, env=dict(os.environ, PYTHONPATH=os.getcwd()), stdout=subprocess.PIPE, text=True)
    journal = os.path.join(home, ".course-seeder", "manifest.json.pending")
    give_up = time.monotonic() + 20
    while not os.path.exists(journal) and proc.poll() is None and time.monotonic() < give_up:
        time.sleep(0.005)  # wait until it is copying (the handler is installed before any of that)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    if "status=partial" not in out:
        pytest.skip("the run finished before SIGTERM arrived")
    assert temp_files(home) == []
    assert "asked to stop" in read(home, ".course-seeder/seeder.log").decode()




def test_a_doctored_journal_cannot_reach_outside_the_home(dirs):
    """The journal (like the manifest) lives in the student's home: paths in it never leave the home."""
    course, home, outside = dirs["course"], dirs["home"], dirs["outside"]
    write_tree(course, {"a.txt": "a"})
    seed(course, home)
    write_tree(outside, {".~sdx-1.tmp": "not ours"})
    journal = os.path.join(str(home), ".course-seeder", "manifest.json.pending")
    with open(journal, "w") as f:
        f.write('{"run": "x", "dirs": ["..", "../outside", "a/../.."]}\n')
        f.write('{"removed": ["../outside/secret.txt", "a.txt/.."], "mkdir": ["../x"]}\n')
        f.write('{"seeded": [["../outside/secret.txt", "%s", 420, 1, 1]]}\n' % ("0" * 64))
    assert seed(course, home).status == "ok"
    assert sorted(os.listdir(outside)) == [".~sdx-1.tmp", "secret.txt"]
    assert read(home, "a.txt") == b"a" and not os.path.exists(journal)


def test_changes_made_when_the_manifest_cannot_be_saved_are_recognised(fast_tmp):
    """A removal, an rmdir and a mode change done while the manifest could not be saved (a full disk, the
    manifest's own write failing) are recovered from the journal: with `respect`, the course file re-added
    later is not mistaken for one the student deleted."""
    course, home = os.path.join(fast_tmp, "course"), os.path.join(fast_tmp, "home")
    write_tree(course, {"a.txt": "a", "gone.txt": "g", "empty/.keep": "k", "run.sh": ("x", 0o644)})
    os.unlink(os.path.join(course, "empty", ".keep"))
    assert seed(course, home, on_deleted="respect").status == "ok"
    os.unlink(os.path.join(course, "gone.txt"))
    os.rmdir(os.path.join(course, "empty"))
    os.chmod(os.path.join(course, "run.sh"), 0o755)

    def manifest_write_fails(op: str, path: str) -> None:
        if op == "create" and path.endswith("-0.tmp"):  # the manifest's temporary file
            raise OSError(28, "No space left on device", path)

    summary = seed(course, home, on_deleted="respect", hook=manifest_write_fails)
    assert summary.status == "disk-full" and not summary.manifest_written
    assert not os.path.exists(os.path.join(home, "gone.txt")) and not os.path.exists(os.path.join(home, "empty"))
    write_tree(course, {"gone.txt": "g"})  # the course brings them back
    os.mkdir(os.path.join(course, "empty"))
    os.chmod(os.path.join(course, "run.sh"), 0o644)
    assert seed(course, home, on_deleted="respect").status == "ok"
    assert read(home, "gone.txt") == b"g" and os.path.isdir(os.path.join(home, "empty"))
    assert os.stat(os.path.join(home, "run.sh")).st_mode & 0o777 == 0o644
