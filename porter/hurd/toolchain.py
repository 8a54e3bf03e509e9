"""The i686-gnu cross compiler: gcc (C only, no libc yet) from Debian's gcc source,
with Debian's binutils-i686-gnu, built once into porter's cache and shared by
every source set (each set's wrappers point it at that set's sysroot).

clang cannot be the Hurd-side compiler: the DDE itself needs gcc (nested
functions in mach_glue/block.c, K&R declarations, section attributes clang
rejects), and Hurd code is built with gcc on the Hurd.  clang stays a second
opinion for the tree's own files (``porter check --target hurd --cc clang``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import PorterError
from ..buildsteps import Step, StepContext, run_steps, steps_done
from .sources import Component, hurd_root

TARGET = "i686-gnu"
BINUTILS = ("as", "ld", "ar", "nm", "objcopy", "objdump", "ranlib", "strip", "readelf")
GCC_CONFIGURE = (
    f"--target={TARGET}", "--enable-languages=c", "--without-headers", "--with-newlib",
    "--disable-shared", "--disable-threads", "--disable-nls", "--disable-multilib",
    "--disable-libssp", "--disable-libquadmath", "--disable-libgomp", "--disable-libatomic",
    "--disable-decimal-float", "--disable-libvtv", "--disable-bootstrap",
    # headers and libraries come from the --sysroot each set's wrapper passes
    "--with-native-system-header-dir=/usr/include",
)


@dataclass(frozen=True)
class Toolchain:
    root: Path
    gcc: Path              # the real i686-gnu-gcc (set wrappers add --sysroot)

    @property
    def version(self) -> str:
        return self.root.name


def binutils_missing() -> list[str]:
    return [f"{TARGET}-{t}" for t in BINUTILS if shutil.which(f"{TARGET}-{t}") is None]


def require_binutils() -> None:
    missing = binutils_missing()
    if missing:
        raise PorterError(f"{', '.join(missing)} not found: install Debian's binutils-i686-gnu "
                          "(scripts/install-debian-deps installs it)")


def toolchain_root(gcc_src: Component) -> Path:
    return hurd_root() / "toolchain" / f"gcc-{gcc_src.ident}"


def _steps(gcc_src: Component, root: Path) -> list[Step]:
    build, prefix = root / "build", root / "install"
    configure = [str(gcc_src.tree / "configure"), f"--prefix={prefix}",
                 f"--with-sysroot={root / 'no-sysroot'}", *GCC_CONFIGURE,
                 f"--with-as={shutil.which(f'{TARGET}-as') or f'/usr/bin/{TARGET}-as'}",
                 f"--with-ld={shutil.which(f'{TARGET}-ld') or f'/usr/bin/{TARGET}-ld'}"]
    jobs = f"-j{os.cpu_count() or 2}"

    def do_configure(ctx: StepContext) -> None:
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir(parents=True)
        ctx.run(configure, cwd=build)

    def do_build(ctx: StepContext) -> None:
        # Debian's -dfsg tarball drops the docs, so gcc/s-tm-texi (which compares the
        # generated tm.texi with the shipped one) can never succeed: build the generator,
        # then stamp it as done, as Debian's own rules do.
        ctx.run(["make", jobs, "all-build-libiberty"], cwd=build)
        ctx.run(["make", "configure-gcc"], cwd=build)
        ctx.run(["make", "-C", "gcc", "build/genhooks"], cwd=build)
        (build / "gcc" / "s-tm-texi").touch()
        ctx.run(["make", jobs, "all-gcc", "all-target-libgcc"], cwd=build)

    def do_install(ctx: StepContext) -> None:
        shutil.rmtree(prefix, ignore_errors=True)
        ctx.run(["make", "install-gcc", "install-target-libgcc"], cwd=build)
        # gcc built without headers installs a limits.h that never reaches the C
        # library's; the full one (what gcc writes when the target has a libc)
        # chains to it once a sysroot provides one.
        gccdir = gcc_src.tree / "gcc"
        fixed = next(prefix.glob(f"lib/gcc/{TARGET}/*/include-fixed"))
        (fixed / "limits.h").write_bytes(b"".join((gccdir / n).read_bytes()
                                                  for n in ("limitx.h", "glimits.h", "limity.h")))

    return [
        Step("gcc-configure", do_configure, (gcc_src.ident, *configure), "configuring gcc for i686-gnu"),
        Step("gcc-build", do_build, ("make all-gcc all-target-libgcc",),
             "building gcc (C only) and libgcc: about 10 minutes on 2 cores"),
        Step("gcc-install", do_install, ("limits.h: limitx glimits limity",), "installing gcc"),
    ]


def ensure_toolchain(gcc_src: Component, log=print) -> Toolchain:
    require_binutils()
    root = toolchain_root(gcc_src)
    run_steps(root, _steps(gcc_src, root), dict(os.environ, LC_ALL="C"), log=lambda m: log(f"toolchain: {m}"))
    return Toolchain(root, root / "install" / "bin" / f"{TARGET}-gcc")


def cached_toolchain(gcc_src: Component) -> Toolchain | None:
    root = toolchain_root(gcc_src)
    if not steps_done(root, _steps(gcc_src, root)):
        return None
    return Toolchain(root, root / "install" / "bin" / f"{TARGET}-gcc")
