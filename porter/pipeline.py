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


def dde_symbols_if_built(dde: DdeTree) -> frozenset[str] | None:
    """Symbols of the DDE build in the cache, without building it."""
    try:
        from .dde_build import cached_build
    except ImportError:
        return None
    build = cached_build(dde)
    return build.defined_symbols if build else None


def load_inputs(bundle_name: str, version: str, rule_paths: list[Path] | None = None,
                linux_root: Path | None = None, dde: DdeTree | None = None) -> Inputs:
    manifest = load_manifest()
    release = manifest.release(version)
    bundle = manifest.bundle(bundle_name)
    sources, headers = bundle.files_in(release)
    root = linux_root or linux_dir(version)
    if not root.is_dir():
        raise PorterError(f"Linux {version} is not in porter's cache ({root}); "
                          f"run `porter fetch --version {version}` (or with --from PATH)")
    dde = dde or require_dde()
    return Inputs(bundle, release, root, tuple(sources), tuple(headers), dde,
                  load_rules(rule_paths), dde_symbols_if_built(dde))


def scan_inputs(inputs: Inputs) -> BundleScan:
    rules = inputs.rules
    dma_args = {api: r.arg for r in rules.by_action("heap-dma") for api in r.apis}
    initcalls = tuple(api for r in rules.by_action("unique-initcall") for api in r.apis)
    return scan_files(inputs.linux_root, list(inputs.sources), list(inputs.headers), inputs.dde,
                      inputs.release.version, dma_args, initcalls)
