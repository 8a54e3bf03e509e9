"""Scan results kept in porter's cache, keyed by everything that can change them.

Parsing a bundle with libclang is most of a port's time, and a re-run that
changes nothing should cost no more than reading the result back. The key is
a SHA-256 over: the release's files (their contents), the DDE tree (where it lives and what it was fetched
from; porter refuses a DDE tree whose files changed since), porter's shim
headers, the rules' inputs to the scan (heap-DMA arguments, initcall
macros, the shims a parse includes, the calls whose arguments it records), porter's own code and libclang's (bindings and library). Anything else changed
means another key, never a stale result. A damaged entry is scanned afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path

from . import SHIMS_DIR, _PACKAGE
from .cache import cache_root

FORMAT = 1          # bump when what is pickled changes shape in a way the code hash would miss


def _tree_digest(root: Path, pattern: str) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob(pattern)):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    """The file's own SHA-256 (a few files: cheap), not the manifest's word for it."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"


def _code_digest() -> str:
    """porter's own code and libclang's (its bindings and library), by their stat (statmemo.py)."""
    from . import statmemo
    import clang.cindex
    clang_dir = Path(clang.cindex.__file__).parent
    paths = [p for p in statmemo.tree_paths(_PACKAGE) if p.endswith(".py")] + statmemo.tree_paths(clang_dir)
    fp = statmemo.fingerprint(map(Path, paths))
    digest = statmemo.recall("code-digest", fp)
    if digest is None:
        digest = _tree_digest(_PACKAGE, "*.py") + _tree_digest(clang_dir, "*")
        statmemo.remember("code-digest", fp, digest)
    return digest


def scan_key(inputs, dma_args: dict, initcalls: tuple, shims: dict | None = None, calls=frozenset()) -> str:
    parts = {
        "format": FORMAT,
        "release": inputs.release.version,
        "files": {p: _file_digest(inputs.linux_root / p) for p in (*inputs.sources, *inputs.headers)},
        "dde": [str(inputs.dde.root), inputs.dde.origin],
        "shims": _tree_digest(SHIMS_DIR / "include", "*.h"),
        "scan_rules": [sorted(dma_args.items()), list(initcalls), sorted((shims or {}).items()), sorted(calls)],
        # which headers are scanned as the kernel's (Bundle.kernel_headers)
        "kernel_headers": list(inputs.bundle.kernel_headers),
        "code": _code_digest(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def enabled() -> bool:
    """PORTER_SCAN_CACHE=0 scans afresh every time (a cold run, for benchmarks and doubt)."""
    return os.environ.get("PORTER_SCAN_CACHE", "1") != "0"


def cache_dir() -> Path:
    return cache_root() / "scan"


def load(key: str):
    path = cache_dir() / f"{key}.pickle"
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except FileNotFoundError:
        return None
    except Exception:                  # truncated or from another porter: scan afresh, replace it
        return None


def store(key: str, scan) -> None:
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".scan-")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(scan, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, d / f"{key}.pickle")      # readers see the whole entry or none
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
