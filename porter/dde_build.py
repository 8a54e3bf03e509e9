"""Build the real libdde_linux26 for i386 on Linux with the DDE's own makefiles.

porter links ported drivers against the Hurd's own Linux layer, so it needs
that layer built: ``build_dde`` copies a DDE source tree (``libdde-linux26``
and the ``libddekit`` headers it includes) to ``build_root/src``, runs the
DDE's makefiles there in two steps (headers, then ``lib/src``) with ``gcc
-m32`` and a few flags a modern gcc needs, and lists the global symbols of
``libdde_linux26.o.a`` and ``libdde_linux26_net.a`` with ``nm``.

``build_root/BUILT.json`` is written only after a successful build; it records
a key over the source contents, the compiler, the flags and porter's compat
headers.  A later call with the same key reuses the build; anything else
(another tree, another gcc, a failed or interrupted build) starts again from
a fresh copy, because the DDE's makefiles do not track header dependencies.
"""

from __future__ import annotations

import datetime
import fcntl
import functools
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import COMPAT_DIR
from .buildsteps import error_excerpt
from .dde import PKGDIR_NAMES

COMPAT_INCLUDE_DIR = COMPAT_DIR
KIT_DIR = "libddekit"            # lib/src includes ../libddekit for <ddekit/*.h>


def _pkg_name(tree: Path) -> str:
    """The DDE's Linux-layer directory as this tree spells it (libdde-linux26 or libdde_linux26)."""
    for name in PKGDIR_NAMES:
        if (tree / name / "Makeconf").is_file():
            return name
    return PKGDIR_NAMES[0]


def _dirs(tree: Path) -> tuple[str, str]:
    return (_pkg_name(tree), KIT_DIR)
STAMP_NAME = "BUILT.json"

# i386 for compiling, assembling and the DDE's CHECKCC probes (ld gets -m elf_i386 from mk/Makeconf)
CC = "gcc -m32"
# C flags go into CARCHFLAGS_x86, the per-architecture hook mk/binary.inc adds to OPTS (the DDE
# leaves it empty for x86).  First "-idirafter <compat>": porter's <linux/compiler-gcc<N>.h> for a
# gcc newer than the DDE knows, searched after the DDE's headers so a DDE that has one keeps it.
EXTRA_CFLAGS = (
    # Debian's gcc makes PIE code by default; kernel code is non-PIC (Linux adds -fno-pie too),
    # and PIE code would add __x86.get_pc_thunk.* to the symbol lists
    "-fno-pie",
    # gcc 14 makes these errors; the DDE triggers them (assert in kernel/time.c,
    # dde_initcall in arch/l4/init.c, __pa in linux/efi.h), gcc 12 only warns
    "-Wno-error=implicit-function-declaration",
    "-Wno-error=implicit-int",
    "-Wno-error=int-conversion",
)
# Variables a calling make or shell would leak into the DDE's makefiles (which add to them with +=).
ENV_TO_DROP = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
               "CFLAGS", "CPPFLAGS", "ASFLAGS", "LDFLAGS")


@dataclass(frozen=True)
class DdeBuild:
    build_dir: Path            # the DDE copy that was built (PKGDIR of libdde-linux26 inside it)
    obj_base: Path             # OBJ_BASE (…/libdde-linux26/build)
    libdde_linux26_o: Path     # libdde_linux26.o.a
    libdde_linux26_net: Path   # libdde_linux26_net.a
    defined_symbols: frozenset[str]   # global symbols defined by the two libraries (nm)
    undefined_symbols: frozenset[str] # what they need from outside (ddekit_*, libc, ...)
    reused: bool               # True when a previous build for this revision was reused

    # -- a bundle's own DDE libraries (virtio-net: net; virtio-blk: block) ----------------
    def library(self, name: str) -> Path:
        """libdde_linux26_<name>.a of this build (the DDE's lib/src builds one per enabled area)."""
        path = Path(self.libdde_linux26_o).with_name(f"libdde_linux26_{name}.a")
        if not path.is_file():
            raise DdeBuildError("libraries", f"{path} is missing: the DDE's Makeconf.local does not "
                                             f"enable CONFIG_DDE26_{name.upper()}")
        return path

    def symbols_for(self, libraries: tuple[str, ...] | list[str]) -> frozenset[str]:
        """Global symbols libdde_linux26.o.a and the named libraries define (net's: defined_symbols)."""
        names = tuple(libraries)
        if names == ("net",):
            return self.defined_symbols
        paths = [Path(self.libdde_linux26_o)] + [self.library(n) for n in names]
        return _nm_symbols_cached(tuple(str(p) for p in paths),
                                  tuple(p.stat().st_mtime_ns for p in paths))


class DdeBuildError(Exception):
    """carries .step (which make step / command failed) and .output (the DDE's own error output, tail)"""

    def __init__(self, step: str, message: str, output: str = ""):
        super().__init__(f"DDE build failed at step '{step}': {message}" + (f"\n{output}" if output else ""))
        self.step = step
        self.output = output


def make_steps(jobs: int, compat_dir: Path = COMPAT_INCLUDE_DIR) -> list[tuple[str, str, list[str]]]:
    """(step, directory under libdde-linux26, make command) in build order."""
    # ARCH: the incubator's 64-bit-aware include/Makefile links asm-<suffix> from it
    flags = ["ARCH=x86", f"CC={CC}", f"CARCHFLAGS_x86=-idirafter {compat_dir} {' '.join(EXTRA_CFLAGS)}"]
    return [
        # serial: subdir.mk gives contrib/ and include/ no order, and lib/ needs their headers
        ("headers", ".", ["make", *flags, "contrib", "include"]),
        ("libraries", "lib/src", ["make", f"-j{jobs}", *flags]),
    ]


def build_dde(src_tree: Path, build_root: Path, *, log=print, jobs: int = 2) -> DdeBuild:
    """Copy src_tree to build_root/src (if not yet there), build for i386, stamp it; reuse when the stamp matches."""
    src_tree, build_root = Path(src_tree).resolve(), Path(build_root).resolve()
    missing = [d for d in (f"{_pkg_name(src_tree)}/Makeconf", KIT_DIR) if not (src_tree / d).exists()]
    if missing:
        raise DdeBuildError("source", f"{src_tree} is not a DDE tree (no {', '.join(missing)})")

    build_root.mkdir(parents=True, exist_ok=True)
    with open(build_root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # clones sharing one cache must not build into one copy at once
        key = _build_key(src_tree)
        stamp = _read_stamp(build_root / STAMP_NAME)
        if stamp.get("key") == key:
            changed = _changed_artefacts(build_root, stamp)
            if not changed:
                log(f"DDE build: reusing {build_root / 'src'} (built {stamp['built_at']})")
                return _result(build_root, reused=True)
            log(f"DDE build: {changed[0]} changed since it was built; building again")
        _build(src_tree, build_root, key, log=log, jobs=jobs)
        return _result(build_root, reused=False)


def _build(src_tree: Path, build_root: Path, key: str, *, log, jobs: int) -> None:
    stamp_path, copy = build_root / STAMP_NAME, build_root / "src"
    stamp_path.unlink(missing_ok=True)
    shutil.rmtree(copy, ignore_errors=True)
    log(f"DDE build: copying {src_tree} to {copy}")
    pkg = _pkg_name(src_tree)
    for name in _dirs(src_tree):
        # not build/: the DDE's own install step lays out OBJ_BASE in the copy
        shutil.copytree(src_tree / name, copy / name, symlinks=True,
                        ignore=lambda d, names: ["build"] if Path(d).name == pkg else [])

    started = time.monotonic()
    pkgdir, logs = copy / pkg, build_root / "logs"
    logs.mkdir(exist_ok=True)
    for step, subdir, command in make_steps(jobs):
        log(f"DDE build: {step}: {shlex.join(command)} (in {pkgdir / subdir})")
        _run_make(step, command, pkgdir / subdir, logs / f"{step}.log")
    seconds = time.monotonic() - started

    artefacts = _artefacts(build_root)
    for path in artefacts.values():
        if not path.is_file():
            raise DdeBuildError("libraries", f"make succeeded but {path} is missing")
    stamp = {
        "key": key,
        "built_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "source": str(src_tree),
        "compiler": _compiler_version(),
        "make": {step: shlex.join(command) for step, _, command in make_steps(jobs)},
        "artefacts": {name: str(path) for name, path in artefacts.items()},
        "sha256": {str(path): _sha256(path) for path in artefacts.values()},
    }
    tmp = stamp_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stamp, indent=2) + "\n")
    tmp.replace(stamp_path)
    log(f"DDE build: built in {seconds:.1f}s")


def _run_make(step: str, command: list[str], cwd: Path, log_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV_TO_DROP}
    env.update(LC_ALL="C", PWD=str(cwd))  # plain-ASCII compiler messages; the mk files read PWD
    with open(log_path, "w") as out:
        try:
            result = subprocess.run(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        except OSError as e:
            raise DdeBuildError(step, f"cannot run {command[0]}: {e}") from None
    if result.returncode != 0:
        raise DdeBuildError(step, f"`{shlex.join(command)}` exited with {result.returncode} "
                                  f"(full output: {log_path})", error_excerpt(log_path.read_text(errors="replace")))


def _artefacts(build_root: Path) -> dict[str, Path]:
    lib_src = build_root / "src" / _pkg_name(build_root / "src") / "lib" / "src"  # lib.mk leaves them here
    return {"libdde_linux26_o": lib_src / "libdde_linux26.o.a",
            "libdde_linux26_net": lib_src / "libdde_linux26_net.a"}


def _result(build_root: Path, *, reused: bool) -> DdeBuild:
    artefacts = _artefacts(build_root)
    libraries = list(artefacts.values())
    defined = _nm_symbols(libraries, "--defined-only")
    build_dir = build_root / "src" / _pkg_name(build_root / "src")
    return DdeBuild(
        build_dir=build_dir,
        obj_base=build_dir / "build",
        defined_symbols=defined,
        undefined_symbols=_nm_symbols(libraries, "--undefined-only") - defined,
        reused=reused,
        **artefacts,
    )


def _nm_symbols(paths: list[Path], which: str) -> frozenset[str]:
    from . import statmemo
    fp = statmemo.fingerprint(paths, which)
    known = statmemo.recall("nm", fp)
    if known is not None:
        return frozenset(known)
    symbols = _run_nm(paths, which)
    statmemo.remember("nm", fp, sorted(symbols))
    return symbols


def _run_nm(paths: list[Path], which: str) -> frozenset[str]:
    result = subprocess.run(["nm", "-P", "-g", which, *map(str, paths)],
                            capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    if result.returncode != 0:
        raise DdeBuildError("nm", f"nm {which} failed", result.stderr[-2000:])
    # -P lines are "name type value size"; archive members appear as "lib.a[member.o]:"
    return frozenset(line.split()[0] for line in result.stdout.splitlines()
                     if line.strip() and not line.endswith(":"))


@functools.lru_cache(maxsize=8)
def _nm_symbols_cached(paths: tuple[str, ...], mtimes: tuple[int, ...]) -> frozenset[str]:
    return _nm_symbols([Path(p) for p in paths], "--defined-only")


def _build_key(src_tree: Path) -> str:
    """Everything that changes the libraries: source contents, compiler, flags, compat headers."""
    from . import statmemo
    # neither the job count nor where the checkout is (clones share one cache) changes the output
    commands = [shlex.join(command) for _, _, command in make_steps(jobs=1, compat_dir=Path("<compat>"))]
    pkg = _pkg_name(src_tree)
    trees = [src_tree / name for name in _dirs(src_tree)] + [COMPAT_INCLUDE_DIR]
    # porter's fetch lays out OBJ_BASE/include in the source; not an input
    inputs = {tree: statmemo.tree_paths(tree, lambda parts, t=tree: parts[:1] == ("build",) and t.name == pkg)
              for tree in trees}
    gcc = shutil.which("gcc")
    fp = statmemo.fingerprint([Path(os.path.realpath(gcc)) if gcc else Path("<no gcc>"),
                               *(p for paths in inputs.values() for p in paths)], *commands)
    key = statmemo.recall("dde-build-key", fp)
    if key is None:
        key = _build_key_of(inputs, commands)
        statmemo.remember("dde-build-key", fp, key)
    return key


def _build_key_of(inputs: dict, commands: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update(_compiler_version().encode())
    for command in commands:
        digest.update(command.encode())
    for tree, paths in inputs.items():
        for path in map(Path, paths):
            digest.update(str(path.relative_to(tree.parent)).encode() + b"\0")
            if path.is_symlink():
                digest.update(os.readlink(path).encode())
            elif path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _compiler_version() -> str:
    try:
        return subprocess.run(["gcc", "--version"], capture_output=True, text=True,
                              check=True).stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError) as e:
        raise DdeBuildError("compiler", f"cannot run gcc: {e}") from None


def _read_stamp(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def build_root_for(tree) -> Path:
    """Where the cache keeps the i386 build of a fetched DDE tree (beside its src/)."""
    return Path(tree.root).parent / "build-i386"


def cached_build(tree, log=lambda _msg: None) -> DdeBuild | None:
    """The build of this DDE tree if one was made already; never starts one."""
    root = build_root_for(tree)
    stamp = _read_stamp(root / STAMP_NAME)
    if not stamp or stamp.get("key") != _build_key(Path(tree.root).resolve()):
        return None
    if _changed_artefacts(root, stamp):
        return None
    return _result(root, reused=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _changed_artefacts(build_root: Path, stamp: dict) -> list[Path]:
    """The built libraries that are missing or differ from what the build wrote (a corrupt cache)."""
    from . import statmemo
    recorded = stamp.get("sha256", {})
    paths = list(_artefacts(build_root).values())
    fp = statmemo.fingerprint(paths, json.dumps(recorded, sort_keys=True))
    if statmemo.recall("dde-artefacts-intact", fp):
        return []
    changed = [p for p in paths if not p.is_file() or (str(p) in recorded and _sha256(p) != recorded[str(p)])]
    if not changed:
        statmemo.remember("dde-artefacts-intact", fp, True)
    return changed


def ensure_build(tree, log=print) -> DdeBuild:
    """Build the DDE tree once per revision (says so when it reuses the build)."""
    return build_dde(tree.root, build_root_for(tree), log=log)
