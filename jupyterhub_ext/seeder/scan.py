"""Listing the course tree: one ``lstat`` per file, no file content read.

Symlinks in the course tree are resolved, and used only if their target is inside the (real) source tree:
a link to a file is seeded as a regular file with the target's content and mode, a link to a directory is
descended (cycles cut). Links that point outside the tree, dangle, or loop are left out and reported.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat as stat_mod

from .model import INDEX_NAME, CourseTree, SourceFile

# Left out unless --no-default-excludes: editor and tool debris that should never land in a student's home.
DEFAULT_EXCLUDES = (".git", ".ipynb_checkpoints", "__pycache__", "*.pyc", ".DS_Store")
MAX_DEPTH = 64


def exclude_matcher(patterns):
    """A fast ``name -> bool`` for fnmatch-style patterns on base names (one regex, not one fnmatch each)."""
    literal = {p for p in patterns if not any(c in p for c in "*?[")}
    globs = [p for p in patterns if p not in literal]
    regex = re.compile("|".join(fnmatch.translate(g) for g in globs)).match if globs else None

    def excluded(name: str) -> bool:
        return name in literal or (regex is not None and regex(name) is not None)

    return excluded


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def scan_course(source: str, excludes=DEFAULT_EXCLUDES) -> CourseTree:
    """List the course tree under ``source`` (whose real path is used, so links are judged against it)."""
    root = os.path.realpath(source)
    tree = CourseTree()
    excluded = exclude_matcher(excludes)
    _walk(root, root, "", tree, excluded, {root}, 0)
    return tree


def _walk(root: str, directory: str, prefix: str, tree: CourseTree, excluded, chain: set, depth: int) -> None:
    try:
        entries = os.scandir(directory)
    except OSError as e:
        tree.problems.append((prefix.rstrip("/") or ".", "directory unreadable: %s" % e.strerror))
        return
    subdirs = []
    with entries:
        for entry in entries:
            name = entry.name
            if excluded(name) or (depth == 0 and name == INDEX_NAME):
                continue
            rel = prefix + name
            try:
                if entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    tree.files[rel] = SourceFile(rel, entry.path, st.st_size, st.st_mtime_ns, st.st_mode)
                elif entry.is_dir(follow_symlinks=False):
                    subdirs.append((rel, entry.path, entry.path))
                elif entry.is_symlink():
                    target = _resolve(root, entry.path, rel, tree)
                    if target is None:
                        continue
                    st = os.stat(target)
                    if stat_mod.S_ISREG(st.st_mode):
                        tree.files[rel] = SourceFile(rel, target, st.st_size, st.st_mtime_ns, st.st_mode)
                    elif stat_mod.S_ISDIR(st.st_mode):
                        subdirs.append((rel, target, entry.path))
                    else:
                        tree.problems.append((rel, "symlink to something that is not a file or directory"))
                else:
                    tree.problems.append((rel, "not a regular file, directory or symlink"))
            except OSError as e:
                tree.problems.append((rel, "unreadable: %s" % e.strerror))
    for rel, real, shown in subdirs:
        if real in chain:
            tree.problems.append((rel, "symlink loop"))
            continue
        if depth >= MAX_DEPTH:
            tree.problems.append((rel, "deeper than %d levels" % MAX_DEPTH))
            continue
        tree.dirs[rel] = real
        _walk(root, real, rel + "/", tree, excluded, chain | {real}, depth + 1)


def _resolve(root: str, link: str, rel: str, tree: CourseTree) -> str | None:
    target = os.path.realpath(link)
    if not _inside(target, root):
        tree.problems.append((rel, "symlink points outside the course tree; left out"))
        return None
    if not os.path.exists(target):
        tree.problems.append((rel, "dangling symlink; left out"))
        return None
    return target
