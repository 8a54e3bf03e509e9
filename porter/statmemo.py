"""What porter learnt by reading many files, remembered against those files' stat.

Checking a cached DDE tree against its fetch record, keying its build and
listing its libraries' symbols each read thousands of files or run nm, on
every command. Their answer changes only when a file does, and any write to a
file changes its ctime (which, unlike mtime, no user can set back), so the
answer is kept under a fingerprint of each file's path, size, mtime, ctime
and inode, and recomputed when the fingerprint differs. The memo lives in
porter's cache; a damaged one is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from .cache import cache_root

KEEP = 32            # fingerprints remembered per kind


def fingerprint(paths: Iterable[Path], *extra: str) -> str:
    h = hashlib.sha256("\0".join(extra).encode())
    for p in paths:
        try:
            st = os.lstat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\n".encode())
        except FileNotFoundError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()


def tree_paths(root: Path, skip: Callable[[tuple[str, ...]], bool] = lambda parts: False) -> list[str]:
    """Every entry below ``root`` (files, symlinks, directories) as a path string, in
    pathlib's sorted order; ``skip(parts)``, given the entry's path components
    relative to ``root``, prunes it and what is below it. (Strings: a tree of
    thousands of entries as Path objects costs more than the stat calls.)"""
    out, stack = [], [(str(root), ())]
    while stack:
        d, parts = stack.pop()
        try:
            entries = list(os.scandir(d))
        except FileNotFoundError:
            continue
        for e in entries:
            rel = parts + (e.name,)
            if skip(rel):
                continue
            out.append((rel, e.path))
            if e.is_dir(follow_symlinks=False):
                stack.append((e.path, rel))
    out.sort(key=lambda item: item[0])     # component-wise, as sorted(Path.rglob()) orders them
    return [path for _, path in out]


def _file(kind: str) -> Path:
    return cache_root() / "memo" / f"{kind}.json"


def recall(kind: str, fp: str):
    try:
        return json.loads(_file(kind).read_text()).get(fp)
    except (OSError, ValueError, AttributeError):
        return None


def remember(kind: str, fp: str, value) -> None:
    path = _file(kind)
    try:
        memo = json.loads(path.read_text())
        if not isinstance(memo, dict):
            memo = {}
    except (OSError, ValueError):
        memo = {}
    memo.pop(fp, None)
    memo[fp] = value
    memo = dict(list(memo.items())[-KEEP:])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{kind}-")
        with os.fdopen(fd, "w") as f:
            json.dump(memo, f)
        os.replace(tmp, path)
    except OSError:
        pass             # a read-only cache: the answer is recomputed next time
