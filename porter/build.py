"""Build stage: link an emitted tree (all but its Mach main.c) with the real
libdde_linux26, ddekit-linux, the port-I/O trap and the driver host's main into
one 32-bit Linux executable that porter's harness runs."""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import SHIMS_DIR, PorterError
from .compile import compile_tree, compiler_flags
from .dde import DdeTree
from .tree import emitted_tree, tree_dde_libraries, tree_report

DDEKIT_LINUX = SHIMS_DIR / "ddekit-linux"
PORTIO_TRAP = SHIMS_DIR / "portio-trap"
DRIVER_HOST = SHIMS_DIR / "driver-host"
HOST_CFLAGS = ["-m32", "-g", "-O2", "-Wall", "-pthread", "-fno-pie"]


@dataclass(frozen=True)
class HostBuild:
    executable: Path
    tree: Path
    reused: bool


def default_output(tree: Path) -> Path:
    """Beside the tree, never in it: the tree's files are porter's record of what it emitted."""
    return tree.resolve().parent / f"{tree.resolve().name}.host" / "driver-host"


def _run(cmd: list[str], step: str, cwd: Path | None = None) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if r.returncode:
        raise PorterError(f"porter build: {step} failed:\n$ {' '.join(cmd)}\n{r.stderr.strip()[-4000:]}")


def _inputs_digest(tree: Path, dde_lib: Path) -> str:
    h = hashlib.sha256()
    for base in (tree, DDEKIT_LINUX, PORTIO_TRAP, DRIVER_HOST):
        for p in sorted(base.rglob("*")):
            if p.is_file() and p.suffix in (".c", ".h", ".ld"):
                h.update(str(p.relative_to(base)).encode() + b"\0" + p.read_bytes())
    h.update(str(dde_lib.stat().st_mtime_ns).encode())
    return h.hexdigest()


def compile_host_side(dde: DdeTree, mains: list[Path], objdir: Path) -> list[Path]:
    """The OS-facing side of a DDE program: DDEKit for Linux, the port trap, and mains."""
    objs = []
    for src in sorted(DDEKIT_LINUX.glob("*.c")) + sorted(PORTIO_TRAP.glob("*.c")) + list(mains):
        obj = objdir / f"host-{src.parent.name}-{src.stem}.o"
        _run(["gcc", *HOST_CFLAGS, f"-I{DDEKIT_LINUX}", f"-I{PORTIO_TRAP}", f"-I{DRIVER_HOST}",
              f"-I{dde.ddekit}", "-c", str(src), "-o", str(obj)], f"compiling {src.name}")
        objs.append(obj)
    return objs


def link_dde_program(objs: list[Path], dde_build, output: Path, libraries=("net",)) -> None:
    """Link objects with the real libdde_linux26 into a 32-bit executable, atomically.

    libdde_linux26.o.a is one relocatable object (taken whole, for its
    initcalls); the bundle's libraries (net, block) are archives; --gc-sections
    as netdde links."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = output.with_name(f".{output.name}.tmp")
    from .dde_build import DdeBuildError
    try:
        archives = [str(dde_build.library(name)) for name in libraries]
    except DdeBuildError as e:      # the DDE was built without that library
        raise PorterError(f"porter build: {e}") from None
    _run(["gcc", "-m32", "-pthread", "-no-pie", "-Wl,--gc-sections",
          f"-Wl,-T,{DDEKIT_LINUX / 'l4dde_ctors.ld'}", "-o", str(tmp_out), *map(str, objs),
          str(dde_build.libdde_linux26_o), *archives], f"linking {output.name}")
    os.replace(tmp_out, output)


@dataclass(frozen=True)
class BundleService:
    """The driver host's part for one bundle: its messages (libc side) and its driver calls (Linux side)."""
    bundle: str
    libc_side: Path
    linux_side: Path


def bundle_service(tree: Path) -> BundleService:
    """The service for the bundle a tree was ported from (its porting.json says which)."""
    bundle = tree_report(tree).get("bundle", "")
    name = bundle.removeprefix("virtio-")
    service = BundleService(bundle, DRIVER_HOST / f"host_{name}.c", DRIVER_HOST / f"host_{name}_linux.c")
    if not (name and service.libc_side.is_file() and service.linux_side.is_file()):
        raise PorterError(f"{tree}: bundle {bundle!r}: the driver host has no service for it "
                          f"(expected {service.libc_side.name} and {service.linux_side.name} in {DRIVER_HOST})")
    return service


def build_host(tree: Path, dde: DdeTree, dde_build, output: Path | None = None, log=print) -> HostBuild:
    tree = emitted_tree(tree)
    output = (output or default_output(tree)).resolve()
    stamp = output.with_name(output.name + ".json")
    digest = _inputs_digest(tree, dde_build.libdde_linux26_o)
    if output.is_file() and stamp.is_file() and json.loads(stamp.read_text()).get("inputs") == digest:
        log(f"porter build: {output} is up to date")
        return HostBuild(output, tree, True)

    objdir = Path(tempfile.mkdtemp(prefix="porter-build-"))
    try:
        objs = []
        # the tree's sources, with the DDE's own flags (exactly what `porter check` compiles)
        for c in compile_tree(tree, dde, objdir):
            if not c.ok:
                raise PorterError(f"porter build: {c.source} does not compile:\n{c.output.strip()}")
            objs.append(c.obj)
        # the host's Linux side, also with the DDE's flags
        service = bundle_service(tree)
        for src in (DRIVER_HOST / "host_dde.c", service.linux_side):
            obj = objdir / f"{src.stem}.o"
            _run(["gcc", "-c", str(src), "-o", str(obj), *compiler_flags(dde, tree, src.stem, "gcc")],
                 f"compiling {src.name}", cwd=tree)
            objs.append(obj)
        host_main = compile_host_side(dde, [DRIVER_HOST / "host_main.c", DRIVER_HOST / "frame_ring.c",
                                            service.libc_side], objdir)
        link_dde_program(objs + host_main, dde_build, output, tree_dde_libraries(tree))
        stamp.write_text(json.dumps({"inputs": digest, "tree": str(tree)}, indent=1) + "\n")
        log(f"porter build: {output}")
        return HostBuild(output, tree, False)
    finally:
        shutil.rmtree(objdir, ignore_errors=True)
