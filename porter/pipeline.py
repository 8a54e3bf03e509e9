"""The inputs of one port, gathered once: release, bundle files, DDE, rules."""

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

from . import PorterError
from .cache import linux_dir
from .dde import DdeTree, require_dde
from .manifest import Bundle, Release, load_manifest
from .rules import RuleSet, load_rules
from .scan import BundleScan, scan_files


@dataclass(frozen=True)
class Inputs:
    bundle: Bundle
    release: Release
    linux_root: Path            # cache directory holding the release's files
    sources: tuple[str, ...]
    headers: tuple[str, ...]
    dde: DdeTree
    rules: RuleSet
    dde_symbols: frozenset[str] | None   # what libdde_linux26 defines, when built


def verify_cached(release: Release, paths: list[str], root: Path) -> None:
    """Every cached file still has the SHA-256 the manifest gives (cheap next to parsing)."""
    import hashlib
    fix = (f"run `porter fetch --version {release.version}` (with --from PATH offline) to restore it"
           if release.listed else f"run `porter fetch --from {release.origin or 'TREE'}` again")
    said = "the manifest says" if release.listed else "recorded at fetch"
    for path in paths:
        f = root / path
        if not f.is_file():
            raise PorterError(f"{f}: missing from porter's cache; {fix}")
        actual = hashlib.sha256(f.read_bytes()).hexdigest()
        expected = release.files[path]
        if actual != expected:
            raise PorterError(f"{f}: changed since it was fetched (sha256 {actual}, {said} "
                              f"{expected}); {fix}")


def dde_symbols_if_built(dde: DdeTree, libraries=("net",)) -> frozenset[str] | None:
    """Symbols of the DDE build in the cache (libdde_linux26.o.a and ``libraries``), without building it."""
    try:
        from .dde_build import DdeBuildError, cached_build
    except ImportError:
        return None
    build = cached_build(dde)
    if build is None:
        return None
    try:
        return build.symbols_for(libraries)
    except DdeBuildError as e:
        raise PorterError(str(e)) from None


def load_inputs(bundle_name: str, version: str, rule_paths: list[Path] | None = None,
                linux_root: Path | None = None, dde: DdeTree | None = None) -> Inputs:
    rules = load_rules(rule_paths)        # first: a broken rule file is the cheapest thing to report
    manifest = load_manifest()
    release = manifest.release(version)
    bundle = manifest.bundle(bundle_name)
    sources, headers = bundle.files_in(release)
    root = linux_root or linux_dir(version)
    if not root.is_dir():
        raise PorterError(f"Linux {version} is not in porter's cache ({root}); "
                          f"run `porter fetch --version {version}` (or with --from PATH)")
    if linux_root is None:
        verify_cached(release, [*sources, *headers], root)
    dde = dde or require_dde()
    return Inputs(bundle, release, root, tuple(sources), tuple(headers), dde,
                  rules, dde_symbols_if_built(dde, bundle.dde_libraries))


def scan_inputs(inputs: Inputs) -> BundleScan:
    rules = inputs.rules
    dma_args = {api: r.arg for r in rules.by_action("heap-dma") for api in r.apis}
    initcalls = tuple(api for r in rules.by_action("unique-initcall") for api in r.apis)
    shims = {api: r.header for r in rules.by_action("include") if r.header.startswith("porter/")
             for api in r.apis}
    calls = frozenset(api for r in rules.by_action("rename") if r.arg_call for api in r.apis)
    args = (inputs.linux_root, list(inputs.sources), list(inputs.headers), inputs.dde,
            inputs.release.version, dma_args, initcalls, shims, calls)
    try:
        key = _scan_key(inputs, dma_args, initcalls, shims, calls)
    except OSError:
        return scan_files(*args)                # a file is unreadable: the scan says which
    cached = _scan_cache_dir() / f"{key}.pickle"
    try:
        return pickle.loads(cached.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
        pass                                    # not cached yet, or written by another porter
    scan = scan_files(*args)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(scan))
        tmp.replace(cached)
    except OSError:
        pass                                    # a read-only cache only costs the next run a scan
    return scan


def _scan_cache_dir() -> Path:
    """PORTER_SCAN_CACHE, else scan/ in porter's cache (benchmarks time a cold one apart)."""
    from .cache import cache_root
    return Path(os.environ["PORTER_SCAN_CACHE"]) if os.environ.get("PORTER_SCAN_CACHE") else cache_root() / "scan"


def _scan_key(inputs: Inputs, dma_args, initcalls, shims, calls) -> str:
    """Everything a scan's result depends on: the bundle's files as they are now, the DDE
    (its fetch id and the flags libclang parses with, which name its include directories
    and clang's own), porter's shim headers (a parse may include them), what the rules ask
    the scan to record, and porter's scanner itself."""
    import hashlib
    from . import SHIMS_DIR, __version__
    from . import scan as scan_module
    from .scan import clang_args

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    files = {p: digest(inputs.linux_root / p) for p in (*inputs.sources, *inputs.headers)}
    flags = {src: clang_args(inputs.dde, Path(src).stem.replace("-", "_"), inputs.linux_root / "include")
             for src in inputs.sources}
    shim_headers = {str(p.relative_to(SHIMS_DIR)): digest(p) for p in sorted((SHIMS_DIR / "include").rglob("*.h"))}
    key = {"porter": __version__, "scanner": digest(Path(scan_module.__file__)), "files": files,
           "version": inputs.release.version, "root": str(inputs.linux_root),
           "dde": [str(inputs.dde.root), sorted(inputs.dde.origin.items())], "flags": flags,
           "shims": shim_headers, "dma_args": sorted(dma_args.items()), "initcalls": list(initcalls),
           "shim_apis": sorted(shims.items()), "calls": sorted(calls)}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]
