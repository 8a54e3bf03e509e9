"""The inputs of one port, gathered once: release, bundle files, DDE, rules."""

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


def scan_inputs(inputs: Inputs, use_cache: bool | None = None) -> BundleScan:
    """The bundle's scan: from porter's scan cache when nothing it depends on changed (scan_cache.py)."""
    from . import scan_cache
    rules = inputs.rules
    dma_args = {api: r.arg for r in rules.by_action("heap-dma") for api in r.apis}
    initcalls = tuple(api for r in rules.by_action("unique-initcall") for api in r.apis)
    shims = {api: r.header for r in rules.by_action("include") if r.header.startswith("porter/")
             for api in r.apis}
    calls = frozenset(api for r in rules.by_action("rename") if r.arg_call for api in r.apis)
    if use_cache is None:
        use_cache = scan_cache.enabled()
    key = scan_cache.scan_key(inputs, dma_args, initcalls, shims, calls) if use_cache else None
    if key and (cached := scan_cache.load(key)) is not None:
        return cached
    scan = scan_files(inputs.linux_root, list(inputs.sources), list(inputs.headers), inputs.dde,
                      inputs.release.version, dma_args, initcalls, shims, calls,
                      kernel_headers=inputs.bundle.kernel_headers)
    if key:
        scan_cache.store(key, scan)
    return scan
