"""`porter check TREE --target hurd`: build every C file of a tree with the tree's
own Makefile, through the DDE's mk/ files as `make` on the Hurd would, with the
i686-gnu cross compiler on the sysroot of the tree's generation; then resolve
the objects' undefined symbols against the libraries that Makefile links, each
library's symbols taken from its i686-gnu build (porter/hurd/sysroot.py).

The link itself is recorded, not run: LINK_PROGRAM is a small script that
writes down the command line make gives it.  So the check sees exactly the
objects, -L directories and -l libraries of the real link.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .. import PorterError
from ..check import CheckResult
from ..compile import CompileResult, count_warnings
from ..tree import REPORT_NAME, emitted_tree, tree_report
from .sysroot import Sysroot
from .toolchain import TARGET

# What gcc adds to every link on the Hurd: libgcc, libc, and the RPC stub libraries
# glibc's libc.so pulls in (Debian's tg-mach-hurd-link: AS_NEEDED(-lmachuser -lhurduser)).
IMPLICIT_LIBS = ("c", "machuser", "hurduser", "gcc")
RECORDER = """#!/bin/sh
# porter: records the link command make runs instead of linking
out=""; prev=""
for a in "$@"; do
  printf '%s\\n' "$a" >> "$PORTER_LINK_RECORD"
  [ "$prev" = "-o" ] && out="$a"
  prev="$a"
done
[ -n "$out" ] && : > "$out"
exit 0
"""


def tree_generation(tree: Path) -> str:
    try:
        return tree_report(tree)["hurd"]["generation"]
    except (PorterError, KeyError):
        raise PorterError(f"{tree}/{REPORT_NAME} does not say which Hurd generation the tree's glue is "
                          "for; re-emit the tree with this porter (`porter port`)") from None


def make_command(tree: Path, sysroot: Sysroot, compiler: Path, recorder: Path, goal: list[str]) -> list[str]:
    """make on the tree's own Makefile, pointed at the sysroot's hurd-dev layout."""
    return ["make", "-C", str(tree), f"PKGDIR={sysroot.dde_pkgdir}", f"HURD_LIBDIR={sysroot.libdir}",
            f"CC={compiler}", f"SYSTEM_TARGET={TARGET}-", f"LINK_PROGRAM={recorder}", *goal]


def run_hurd_check(tree: Path, sysroot: Sysroot, compiler: str = "gcc") -> CheckResult:
    tree = emitted_tree(tree)
    cc = sysroot.gcc if compiler == "gcc" else sysroot.clang if compiler == "clang" else None
    if cc is None:
        raise PorterError(f"--cc {compiler}: the Hurd target knows gcc (the cross gcc) and clang")
    if compiler == "clang" and shutil.which("clang") is None:
        raise PorterError("clang not found; install it or drop --cc clang")
    env = sysroot.env()
    work = Path(tempfile.mkdtemp(prefix="porter-hurd-check-"))
    try:
        build = work / "tree"
        shutil.copytree(tree, build, symlinks=True)     # the tree itself stays as porter emitted it
        recorder = work / "link-recorder"
        recorder.write_text(RECORDER)
        recorder.chmod(0o755)
        record = work / "link.txt"
        env["PORTER_LINK_RECORD"] = str(record)
        sources = _sources(build, sysroot, cc, recorder, env)
        compiles = []
        for src in sources:
            obj = build / (Path(src).stem + ".o")
            t0 = time.monotonic()
            r = subprocess.run(make_command(build, sysroot, cc, recorder, [obj.name]),
                               capture_output=True, text=True, env=env)
            out = r.stdout + r.stderr
            ok = r.returncode == 0 and obj.is_file()
            compiles.append(CompileResult(src, compiler, ok, time.monotonic() - t0, count_warnings(out),
                                          _compile_output(out), obj if ok else None))
        result = CheckResult(tree, compiles, {}, target="hurd")
        if not all(c.ok for c in compiles):
            return result
        r = subprocess.run(make_command(build, sysroot, cc, recorder, []), capture_output=True,
                           text=True, env=env)
        if r.returncode or not record.is_file():
            raise PorterError(f"{tree}: `make` of the tree failed after every object compiled:\n"
                              + (r.stdout + r.stderr).strip()[-3000:])
        _resolve(result, record.read_text().splitlines(), build, sysroot)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _sources(build: Path, sysroot: Sysroot, cc: Path, recorder: Path, env: dict) -> list[str]:
    """SRC_C as the tree's Makefile sets it."""
    r = subprocess.run(make_command(build, sysroot, cc, recorder, ["-pn", "porter-nothing"]),
                       capture_output=True, text=True, env=env)
    m = re.search(r"^SRC_C :?= (.*)$", r.stdout, re.M)
    if not m:
        raise PorterError(f"{build.name}: its Makefile sets no SRC_C (make said: "
                          f"{(r.stderr.strip().splitlines() or ['nothing'])[-1]})")
    return m.group(1).split()


def _compile_output(out: str) -> str:
    """The compiler's messages, without the DDE's echo of every command."""
    keep = [line for line in out.splitlines() if not line.startswith(("make", "  ... ", "i686-gnu-", "/"))
            or ": error" in line or ": warning" in line or "note:" in line]
    return "\n".join(keep)


def _nm(path: Path, *opts: str) -> set[str]:
    r = subprocess.run([f"{TARGET}-nm", "-P", *opts, str(path)], capture_output=True, text=True)
    return {line.split()[0] for line in r.stdout.splitlines() if line.strip() and not line.endswith(":")}


def _link_parts(argv: list[str], build: Path) -> tuple[list[Path], list[Path], list[str]]:
    """(objects, -L directories, -l names) of a recorded link command, in order."""
    objs, dirs, libs = [], [], []
    for a in argv:
        if a.endswith(".o") and not a.startswith("-"):
            objs.append((build / a) if not a.startswith("/") else Path(a))
        elif a.startswith("-L"):
            dirs.append(Path(a[2:]))
        elif a.startswith("-l"):
            libs.append(a[2:])
    return objs, dirs, libs


def _resolve(result: CheckResult, argv: list[str], build: Path, sysroot: Sysroot) -> None:
    objs, dirs, libs = _link_parts(argv, build)
    table = sysroot.symbols()
    libraries, missing = table["libraries"], table["missing"]
    # each -l in link order, then what gcc adds; a library is named by its file when
    # the Makefile's -L directories hold it (as ld would find it), else by glibc's tables
    order: list[str] = []
    for name in [*libs, *IMPLICIT_LIBS]:
        if name in order:
            continue
        found = next((d / f"lib{name}{ext}" for d in dirs for ext in (".a", ".so")
                      if (d / f"lib{name}{ext}").is_file()), None)
        if name not in libraries:
            why = missing.get(name)
            if why:
                result.notes.append(f"-l{name}: not built for this sysroot ({why}); its symbols are not checked")
            elif found is None:
                raise PorterError(f"the tree's Makefile links -l{name}, which neither its -L directories "
                                  f"nor porter's {sysroot.generation} sysroot have")
            continue
        order.append(name)
    result.provided = {f"lib{n}": [] for n in order}
    defined: set[str] = set()
    need: dict[str, list[str]] = {}
    for o in objs:
        defined |= _nm(o, "--defined-only")
        for sym in _nm(o, "-u"):
            need.setdefault(sym, []).append(o.name)
    sets = {n: set(libraries[n]["symbols"]) for n in order}
    for sym, users in sorted(need.items()):
        if sym in defined:
            continue
        lib = next((n for n in order if sym in sets[n]), None)
        if lib is None:
            result.undefined[sym] = users
        else:
            result.provided[f"lib{lib}"].append(sym)
    result.notes += [f"lib{n}: symbols from {libraries[n]['from']}" for n in order
                     if not libraries[n]["from"].startswith("nm ")]
