"""Everything a Hurd-side step needs, made ready on demand: the source set of a
generation, the cross compiler, and the sysroot for one DDE tree."""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import PorterError
from ..buildsteps import StepError
from ..dde import DdeTree, cached_dde_trees
from . import generation as gen
from .sources import cached_set
from .sysroot import Sysroot, cached_sysroot, ensure_sysroot
from .toolchain import cached_toolchain, ensure_toolchain


def dde_for(generation: str, dde_id: str | None = None) -> DdeTree:
    """The cached DDE tree of a generation (the one with dde_id if given)."""
    trees = [t for t in cached_dde_trees() if gen.of_dde_tree(t.root).name == generation]
    if dde_id:
        trees = [t for t in trees if t.root.parent.name == dde_id] or trees
    if not trees:
        raise PorterError(f"no DDE tree of the {generation} generation in porter's cache: "
                          "run `porter fetch --dde --from PATH` with one")
    return trees[0]


# programs the sysroot build runs, and the Debian packages that have them
BUILD_TOOLS = {"autoreconf": "autoconf", "automake": "automake", "libtoolize": "libtool", "flex": "flex",
               "bison": "bison", "gawk": "gawk", "g++": "g++", "make": "make", "patch": "patch"}
BUILD_HEADERS = {"gmp.h": "libgmp-dev", "mpfr.h": "libmpfr-dev", "mpc.h": "libmpc-dev"}   # gcc needs them


def missing_build_tools() -> list[str]:
    """Debian packages the sysroot build needs that this machine lacks."""
    need = [pkg for tool, pkg in BUILD_TOOLS.items() if shutil.which(tool) is None]
    include = Path("/usr/include")
    need += [pkg for header, pkg in BUILD_HEADERS.items()
             if not (include / header).is_file() and not any(include.glob(f"*/{header}"))]
    return sorted(set(need))


def prepare_sysroot(generation: str, dde: DdeTree, log=print) -> Sysroot:
    missing = missing_build_tools()
    if missing:
        raise PorterError(f"building the Hurd sysroot needs {', '.join(missing)}: "
                          f"apt-get install {' '.join(missing)} (scripts/install-debian-deps --hurd installs them)")
    sources = cached_set(generation)
    if sources is None:
        raise PorterError(f"porter's cache has no Hurd sources for the {generation} generation: run "
                          "`porter fetch --hurd [--from PATH ...]`")
    try:
        toolchain = ensure_toolchain(sources["gcc"], log=log)
        return ensure_sysroot(sources, dde, toolchain, log=log)
    except StepError as e:
        raise PorterError(str(e)) from None


def ready_sysroot(generation: str, dde: DdeTree) -> Sysroot | None:
    """The sysroot if it is built already (for tests: never starts a build)."""
    sources = cached_set(generation)
    if sources is None:
        return None
    toolchain = cached_toolchain(sources["gcc"])
    return cached_sysroot(sources, dde, toolchain) if toolchain else None


def prepare_system(generation: str, dde: DdeTree, log=print):
    """The sysroot's sources and toolchain, then glibc, the Hurd's servers and GNU Mach (porter/hurd/system.py)."""
    from .system import ensure_system
    missing = missing_build_tools()
    if missing:
        raise PorterError(f"building the Hurd needs {', '.join(missing)}: apt-get install {' '.join(missing)}")
    sources = cached_set(generation)
    if sources is None:
        raise PorterError(f"porter's cache has no Hurd sources for the {generation} generation: run "
                          "`porter fetch --hurd [--from PATH ...]`")
    try:
        return ensure_system(sources, dde, ensure_toolchain(sources["gcc"], log=log), log=log)
    except StepError as e:
        raise PorterError(str(e)) from None


def ready_system(generation: str, dde: DdeTree):
    from .system import cached_system
    sources = cached_set(generation)
    toolchain = cached_toolchain(sources["gcc"]) if sources else None
    return cached_system(sources, dde, toolchain) if toolchain else None
