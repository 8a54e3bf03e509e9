"""Build check of an emitted tree, as a table, JUnit XML and an exit status.

``--target linux`` compiles every Linux-side source (all but the Mach main.c)
against the real DDE with the DDE's own flags and lists the undefined symbols
that neither the tree, libdde_linux26, libddekit nor libc defines;
``--target hurd`` (porter/hurd/check.py) builds every file with the tree's own
Makefile on an i686-gnu sysroot and checks the symbols against the libraries
that Makefile links."""

import functools
import json
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from . import SHIMS_DIR, PorterError
from .compile import CompileResult, compile_tree
from .dde import DdeTree
from .tree import emitted_tree, tree_dde_id, tree_dde_libraries

STUB_MARK = "ddekit_linux_trace_and_stop"


@dataclass
class CheckResult:
    tree: Path
    compiles: list[CompileResult]
    undefined: dict[str, list[str]]          # symbol -> objects needing it (unexplained)
    # library -> the tree's undefined symbols it defines, in link order
    provided: dict[str, list[str]] = field(default_factory=dict)
    # DDEKit functions the tree needs that ddekit-linux cannot honour: the
    # driver host stops with their name if they are called (trace-and-stop)
    host_stubs: list[str] = field(default_factory=list)
    target: str = "linux"
    notes: list[str] = field(default_factory=list)     # what the check could not see, and why

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.compiles) and not self.undefined

    def from_library(self, name: str) -> list[str]:
        return self.provided.get(name, [])


def _nm(paths: list[Path], *opts: str) -> set[str]:
    if not paths:
        return set()
    r = subprocess.run(["nm", "-P", *opts, *map(str, paths)], capture_output=True, text=True)
    syms = set()
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.endswith(":"):
            syms.add(parts[0])
    return syms


def undefined_by_object(objs: list[Path]) -> dict[str, list[str]]:
    need: dict[str, list[str]] = {}
    for o in objs:
        for s in _nm([o], "-u"):
            need.setdefault(s, []).append(o.name.split(".")[0] + ".o")
    return need


@functools.cache
def libc_symbols() -> frozenset[str]:
    """Symbols the 32-bit libc defines (gcc-multilib's libc6-i386)."""
    out = subprocess.run(["gcc", "-m32", "-print-file-name=libc.so.6"], capture_output=True,
                         text=True).stdout.strip()
    if not out or not Path(out).exists():
        return frozenset()
    return frozenset(s.split("@")[0] for s in _nm([Path(out)], "-D", "--defined-only"))


UNSUPPORTED_LIST = SHIMS_DIR / "ddekit-linux" / "ddekit_linux_unsupported.h"


def host_stub_names() -> frozenset[str]:
    """Names ddekit-linux implements as trace-and-stop (its X(name) list)."""
    return frozenset(re.findall(r"^\s*X\((\w+)\)", UNSUPPORTED_LIST.read_text(), re.M))


def ddekit_symbols(dde: DdeTree) -> frozenset[str]:
    """Functions and variables the DDEKit headers declare (libddekit provides them on the Hurd)."""
    names = set()
    for h in (dde.ddekit / "ddekit").glob("*.h"):
        names |= set(re.findall(r"\b(_?ddekit_\w+|fetch_jiffies)\s*\(", h.read_text(errors="replace")))
    return frozenset(names)


def run_check(tree: Path, dde: DdeTree, dde_symbols: frozenset[str], compilers=("gcc",),
              implicit_is_error: bool = True) -> CheckResult:
    tree = emitted_tree(tree)
    objdir = Path(tempfile.mkdtemp(prefix="porter-check-"))
    try:
        compiles = []
        for cc in compilers:
            if shutil.which(cc) is None:
                raise PorterError(f"compiler {cc!r} not found; install it or drop --cc {cc}")
            compiles += compile_tree(tree, dde, objdir, cc, implicit_is_error)
        kit, libc, stubs = ddekit_symbols(dde), libc_symbols(), host_stub_names()
        result = CheckResult(tree, compiles, {})
        order = ("libdde_linux26", "libddekit", "libc")
        result.provided = {name: [] for name in order}
        # each compiler's objects are a link on their own: what one inlines, the other may call
        for cc in compilers:
            objs = [c.obj for c in compiles if c.obj is not None and c.compiler == Path(cc).name]
            defined = _nm(objs, "--defined-only")
            for sym, users in sorted(undefined_by_object(objs).items()):
                if sym in defined:
                    continue
                if sym in dde_symbols:
                    where = result.provided["libdde_linux26"]
                elif sym in kit:
                    where = result.provided["libddekit"]
                    if sym in stubs and sym not in result.host_stubs:
                        result.host_stubs.append(sym)
                elif sym in libc or sym == "_GLOBAL_OFFSET_TABLE_":
                    where = result.provided["libc"]
                else:
                    known = result.undefined.setdefault(sym, [])
                    known += [u for u in users if u not in known]
                    continue
                if sym not in where:
                    where.append(sym)
        for names in (*result.provided.values(), result.host_stubs):
            names.sort()
        result.undefined = dict(sorted(result.undefined.items()))
        return result
    finally:
        shutil.rmtree(objdir, ignore_errors=True)


def format_table(res: CheckResult) -> str:
    rows = [f"porter check {res.tree}", "",
            f"{'source':28} {'compiler':8} {'result':7} {'warn':>4} {'time':>6}"]
    for c in res.compiles:
        rows.append(f"{c.source:28} {c.compiler:8} {'ok' if c.ok else 'FAILED':7} {c.warnings:4d} {c.seconds:5.1f}s")
    rows.append("")
    rows.append("undefined symbols: " + ", ".join(f"{len(syms)} from {lib}" for lib, syms in res.provided.items()
                                                 if syms or res.target == "linux")
                + f", {len(res.undefined)} unexplained")
    for sym, users in res.undefined.items():
        rows.append(f"  UNDEFINED {sym:32} needed by {', '.join(users)}")
    if res.target == "linux":
        rows.append(f"stubs that stop the Linux driver host if called: {len(res.host_stubs)}"
                    + (f" ({', '.join(res.host_stubs)})" if res.host_stubs else ""))
    rows += [f"note: {n}" for n in res.notes]
    for c in res.compiles:
        if not c.ok:
            rows.append(f"\n--- {c.source} ({c.compiler}) ---\n{c.output.strip()}")
    rows.append("")
    rows.append("check: " + ("passed" if res.ok else "FAILED"))
    return "\n".join(rows)


def write_junit(res: CheckResult, path: Path) -> None:
    cases = []
    for c in res.compiles:
        case = ET.Element("testcase", classname=f"compile.{c.compiler}", name=c.source,
                          time=f"{c.seconds:.3f}")
        if not c.ok:
            ET.SubElement(case, "failure", message=f"{c.source} does not compile").text = c.output
        cases.append(case)
    link = ET.Element("testcase", classname="link", name="undefined-symbols")
    if res.undefined:
        ET.SubElement(link, "failure", message=f"{len(res.undefined)} unexplained undefined symbols").text = \
            "\n".join(f"{s} needed by {', '.join(u)}" for s, u in res.undefined.items())
    cases.append(link)
    suite = ET.Element("testsuite", name="porter-check", tests=str(len(cases)),
                       failures=str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.extend(cases)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def result_data(res: CheckResult) -> dict:
    return {"tree": str(res.tree), "target": res.target, "ok": res.ok,
            "compiles": [{"source": c.source, "compiler": c.compiler, "ok": c.ok, "warnings": c.warnings,
                          "seconds": round(c.seconds, 3), "output": c.output} for c in res.compiles],
            "undefined": res.undefined, "provided": res.provided, "host_stubs": res.host_stubs,
            "notes": res.notes}


def check_tree(tree: Path, junit: Path | None = None, compilers=None, target: str = "linux",
               as_json: bool = False) -> int:
    tree = emitted_tree(tree)
    if target == "hurd":
        res = _check_hurd(tree, compilers)
    else:
        from .dde import dde_of_tree
        from .dde_build import DdeBuildError, ensure_build
        dde = dde_of_tree(tree)
        try:
            build = ensure_build(dde, log=lambda m: print(m, file=sys.stderr))
        except DdeBuildError as e:
            raise PorterError(str(e)) from None
        try:
            symbols = build.symbols_for(tree_dde_libraries(tree))
        except DdeBuildError as e:
            raise PorterError(str(e)) from None
        res = run_check(tree, dde, symbols, tuple(compilers or ("gcc",)))
    print(json.dumps(result_data(res), indent=1) if as_json else format_table(res))
    if junit:
        write_junit(res, junit)
    return 0 if res.ok else 1


def _check_hurd(tree: Path, compilers) -> CheckResult:
    from .hurd.check import run_hurd_check, tree_generation
    from .hurd.prepare import dde_for, prepare_sysroot
    tree = tree.resolve()
    tree = emitted_tree(tree)
    generation = tree_generation(tree)
    dde_id = tree_dde_id(tree)
    sysroot = prepare_sysroot(generation, dde_for(generation, dde_id),
                              log=lambda m: print(m, file=sys.stderr))
    results = [run_hurd_check(tree, sysroot, cc) for cc in (compilers or ("gcc",))]
    merged = results[0]
    for r in results[1:]:
        merged.compiles += r.compiles
        for sym, users in r.undefined.items():
            merged.undefined.setdefault(sym, users)
    merged.notes.insert(0, f"target hurd: the {generation} generation, sysroot {sysroot.root}")
    return merged
