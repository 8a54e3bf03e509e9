"""Compiling a tree's Linux-side sources on Linux with the DDE's own flags: shared
by the Linux-host check and the driver-host build, which must compile exactly
the same objects."""

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import COMPAT_DIR, PorterError
from .dde import DdeTree

# The Hurd-side glue: it needs the Hurd's headers and libmachdev (checked by `--target hurd`)
HURD_ONLY = {"main.c", "machdev_glue.c"}


@dataclass
class CompileResult:
    source: str
    compiler: str
    ok: bool
    seconds: float
    warnings: int
    output: str
    obj: Path | None


def compiler_flags(dde: DdeTree, tree: Path, module: str, compiler: str,
                   implicit_is_error: bool = True) -> list[str]:
    flags = dde.compile_flags(module, [tree / "include"])
    if "clang" in Path(compiler).name:
        flags = ["-target", "i386-pc-linux-gnu"] + [f for f in flags if f != "-m32"]
    # gcc > 5 needs linux/compiler-gcc<N>.h (porter's own, after the DDE's);
    # Debian's gcc defaults to PIE, which kernel code is not written for;
    # an implicit declaration is a symbol the DDE lacks: fail here, not at link time.
    flags += ["-idirafter", str(COMPAT_DIR), "-fno-pie"]
    return flags + (["-Werror=implicit-function-declaration"] if implicit_is_error else [])


def compile_tree(tree: Path, dde: DdeTree, objdir: Path, compiler: str = "gcc",
                 implicit_is_error: bool = True) -> list[CompileResult]:
    results = []
    sources = sorted(p for p in tree.glob("*.c") if p.name not in HURD_ONLY)
    if not sources:
        raise PorterError(f"{tree}: no C sources; is it a tree `porter port` emitted?")
    for src in sources:
        obj = objdir / f"{src.stem}.{Path(compiler).name}.o"
        cmd = [compiler, "-c", str(src), "-o", str(obj),
               *compiler_flags(dde, tree, src.stem, compiler, implicit_is_error)]
        t0 = time.monotonic()
        # cwd: the DDE's flags name "." as an include directory, as in its own build
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=tree)
        out = r.stderr
        results.append(CompileResult(src.name, Path(compiler).name, r.returncode == 0,
                                     time.monotonic() - t0, count_warnings(out),
                                     out, obj if r.returncode == 0 else None))
    return results


def count_warnings(output: str) -> int:
    return len(re.findall(r": warning:", output))
