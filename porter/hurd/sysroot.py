"""The i686-gnu cross sysroot of one source set and DDE tree, built into porter's
cache from real sources, laid out as Debian's hurd-dev installs a Hurd:

- GNU Mach's headers (``make install-data``), MIG built for i686-gnu (the
  packaged mig-x86-64-gnu has x86_64 sizes compiled in), the Hurd's headers
  (``make install-headers``), glibc's Hurd headers (``install-headers`` of
  Debian's glibc, which carries the Hurd port);
- the libraries a DDE tree links, compiled by the cross gcc with their own
  makefiles: the Hurd's (libshouldbeinlibc, libports, libtrivfs, ...), the
  DDE's Hurd side (libddekit, libmachdev or libmachdevdde, libbpf) built inside
  the Hurd's build tree, libdde_linux26 with its own makefiles, libpciaccess,
  and glibc's RPC stub libraries (libmachuser, libhurduser);
- ``/usr/share/libdde_linux26`` (Makeconf, mk/, build/include) as hurd-dev has it.

Each step is stamped (porter/buildsteps.py): a warm cache reuses everything, an
interrupted build resumes.  Nothing is installed outside the set's directory:
the Hurd's 2016 makefiles ignore DESTDIR, so every install names its prefix.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .. import COMPAT_DIR, PorterError
from ..buildsteps import Step, StepContext, run_steps, steps_done
from ..dde import DdeTree
from . import generation as gen
from .sources import SetSources, hurd_root
from .toolchain import BINUTILS, TARGET, Toolchain

LIBDIR = "usr/lib/i386-gnu"                 # Debian's multiarch library directory
DDE_SHARE = "usr/share/libdde_linux26"      # where hurd-dev installs the DDE's Makeconf, mk/, build/
# The Hurd's libraries a DDE driver links (netdde's LIBS), in build order.
HURD_LIBRARIES = ("shouldbeinlibc", "ihash", "iohelp", "ports", "fshelp", "trivfs", "hurd-slab",
                  "bpf", "irqhelp", "machdev")
# The DDE's Hurd-side libraries, built inside the Hurd's tree as Debian does.
DDE_HURD_LIBRARIES = {"2016": ("bpf", "ddekit", "machdev"), "2020": ("ddekit", "machdevdde")}
# glibc's own libraries whose exported symbols come from its abilist files
# (the list its build checks the compiled libraries against).
GLIBC_ABILISTS = ("c", "pthread", "rt", "m", "dl")
# The Hurd's configure checks that link (AC_NO_EXECUTABLES makes them errors without a libc).
HURD_CONFIGURE = ("--without-parted", "--without-libbz2", "--without-libz", "--without-libcrypt",
                  "--without-rump", "--without-libtirpc", "--without-libdaemon", "--without-acpica",
                  "--disable-ncursesw", "--disable-profile", "LEX=:", "YACC=:", "PKG_CONFIG=/bin/false",
                  "ac_cv_func_file_exec_paths=no", "ac_cv_func_exec_exec_paths=no",
                  "ac_cv_func__hurd_exec_paths=no", "ac_cv_func__hurd_libc_proc_init=no",
                  "ac_cv_func_file_utimens=no", "ac_cv_lib_crypt_crypt=no",
                  "ac_cv_lib_ncursesw_initscr=no", "ac_cv_search_clnt_create=no")
# clang lacks __float128 for i686-gnu, which glibc >= 2.40 assumes of every clang >= 3.9 on
# x86 (bits/floatn.h); floatn.h also says "not for this LLVM compiler" when these two are set.
CLANG_NO_FLOAT128 = ("-D__INTEL_LLVM_COMPILER", "-DSYCL_LANGUAGE_VERSION")


@dataclass(frozen=True)
class Sysroot:
    generation: str
    root: Path

    @property
    def sysroot(self) -> Path:
        return self.root / "sysroot"

    @property
    def bin(self) -> Path:
        return self.root / "tools" / "bin"

    @property
    def gcc(self) -> Path:
        return self.bin / f"{TARGET}-gcc"

    @property
    def clang(self) -> Path:
        return self.bin / f"{TARGET}-clang"

    @property
    def libdir(self) -> Path:
        return self.sysroot / LIBDIR

    @property
    def dde_pkgdir(self) -> Path:
        return self.sysroot / DDE_SHARE

    @property
    def symbols_file(self) -> Path:
        return self.root / "symbols.json"

    def env(self) -> dict[str, str]:
        return dict(os.environ, PATH=f"{self.bin}:{os.environ.get('PATH', '')}", LC_ALL="C")

    def symbols(self) -> dict:
        return json.loads(self.symbols_file.read_text())


def sysroot_root(generation: str, dde: DdeTree) -> Path:
    return hurd_root() / "sysroot" / f"{generation}-{dde.root.parent.name}"


def _dde_pkgdir_name(dde: DdeTree) -> str:
    return dde.pkgdir.name          # libdde-linux26 (Debian tree) or libdde_linux26 (incubator)


class _Recipe:
    """The steps for one set and DDE tree; paths and commands in one place."""

    def __init__(self, sources: SetSources, dde: DdeTree, toolchain: Toolchain, root: Path):
        self.src, self.dde, self.tc, self.root = sources, dde, toolchain, root
        self.gen = sources.generation
        self.S = root / "sysroot"
        self.work = root / "work"          # writable copies of the sources (autoreconf writes there)
        self.build = root / "build"
        self.bin = root / "tools" / "bin"
        self.jobs = f"-j{os.cpu_count() or 2}"

    # ---- helpers
    def copy_source(self, name: str, tree: Path) -> Path:
        dest = self.work / name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(tree, dest, symlinks=True)
        return dest

    def fresh(self, path: Path) -> Path:
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    # ---- steps
    def tools(self, ctx: StepContext) -> None:
        self.fresh(self.bin)
        self.S.mkdir(parents=True, exist_ok=True)
        wrappers = {
            f"{TARGET}-gcc": [str(self.tc.gcc), f"--sysroot={self.S}"],
            f"{TARGET}-clang": ["clang", "--target=i686-pc-gnu", f"--sysroot={self.S}",
                                "-fno-integrated-as", *CLANG_NO_FLOAT128],
        }
        for name, argv in wrappers.items():
            _write_script(self.bin / name, argv)
        for tool in BINUTILS:
            real = shutil.which(f"{TARGET}-{tool}")
            (self.bin / f"{TARGET}-{tool}").symlink_to(real)
            (self.bin / f"i686-pc-gnu-{tool}").symlink_to(real)    # what clang looks for
        _write_script(self.bin / f"{TARGET}-cpp", [str(self.bin / f"{TARGET}-gcc"), "-E"])

    def gnumach_headers(self, ctx: StepContext) -> None:
        src = self.copy_source("gnumach", self.src["gnumach"].tree)
        ctx.run(["autoreconf", "-fi"], cwd=src)
        b = self.fresh(self.build / "gnumach")
        # only headers are installed: configure's compiler test must not need a libc;
        # PATCH=true: 2016's config.status.dep.patch no longer applies to today's automake
        ctx.run([str(src / "configure"), f"--host={TARGET}", "--prefix=/usr",
                 f"CC={TARGET}-gcc -nostdlib", "PATCH=true"], cwd=b)
        ctx.run(["make", "install-data", "INFO_DEPS=", f"DESTDIR={self.S}"], cwd=b)

    def mig(self, ctx: StepContext) -> None:
        src = self.copy_source("mig", self.src["mig"].tree)
        ctx.run(["autoreconf", "-fi"], cwd=src)
        b = self.fresh(self.build / "mig")
        prefix = self.root / "tools" / "mig"
        ctx.run([str(src / "configure"), f"--target={TARGET}", f"--prefix={prefix}",
                 f"TARGET_CPPFLAGS=-I{self.S / 'usr/include'}"], cwd=b)
        ctx.run(["make", self.jobs], cwd=b)
        ctx.run(["make", "install"], cwd=b)
        # a script, not a link: mig finds its migcom relative to where it is installed
        _write_script(self.bin / f"{TARGET}-mig", [str(prefix / "bin" / f"{TARGET}-mig")])

    def dde_hurd_dirs(self) -> dict[str, Path]:
        """The DDE's Hurd-side library directories to build inside the Hurd's tree."""
        return {name: self.dde.root / f"lib{name}" for name in DDE_HURD_LIBRARIES[self.gen]
                if (self.dde.root / f"lib{name}").is_dir()}

    def hurd_headers(self, ctx: StepContext) -> None:
        src = self.copy_source("hurd", self.src["hurd"].tree)
        for name, d in self.dde_hurd_dirs().items():
            if not (src / f"lib{name}").exists():      # the 2016 Hurd has no libbpf, libmachdev
                shutil.copytree(d, src / f"lib{name}", symlinks=True)
        ctx.run(["autoreconf", "-fi"], cwd=src)
        b = self.fresh(self.build / "hurd")
        ctx.run([str(src / "configure"), f"--host={TARGET}", "--prefix=/usr",
                 f"MIG={TARGET}-mig", *HURD_CONFIGURE], cwd=b)
        ctx.run(["make", "install-headers", "no_deps=t", *self.hurd_install_vars()], cwd=b)

    def hurd_install_vars(self) -> list[str]:
        return [f"prefix={self.S}/usr", f"includedir={self.S}/usr/include",
                f"libdir={self.S}/{LIBDIR}", "DESTDIR="]

    def glibc_headers(self, ctx: StepContext) -> None:
        glibc = self.src["glibc"].tree
        b = self.fresh(self.build / "glibc")
        host = subprocess.run(["gcc", "-dumpmachine"], capture_output=True, text=True).stdout.strip()
        ctx.run([str(glibc / "configure"), f"--host={TARGET}", f"--build={host}", "--prefix=/usr",
                 f"--with-headers={self.S / 'usr/include'}", "--disable-werror", "--disable-nscd",
                 f"CC={TARGET}-gcc", f"MIG={TARGET}-mig"], cwd=b)
        wanted = _make_variable(glibc / "hurd", b, "user-interfaces")
        have = [i for i in wanted if (self.S / "usr/include" / f"{i}.defs").is_file()]
        left_out = sorted(set(wanted) - set(have))
        install = ["install-headers", "install-bootstrap-headers=yes", f"DESTDIR={self.S}"]
        if not left_out:
            ctx.run(["make", self.jobs, *install], cwd=b)
        else:
            # glibc asks for interfaces this Hurd does not have (2016: hurd/pci, from 2018's
            # pci-arbiter; Debian 2.36's *_experimental): every other directory installs as
            # usual, hurd/ with the interfaces the Hurd has.
            ctx.note(f"glibc's hurd/ interfaces this Hurd lacks, left out: {' '.join(left_out)}")
            ctx.run(["make", "-k", self.jobs, *install], cwd=b, check=False)
            failed = set(re.findall(r"\*\*\* \[[^\]]*?(\w+)/install-headers\]", ctx.log_path.read_text()))
            if failed - {"hurd"}:
                raise PorterError(f"glibc install-headers failed in {', '.join(sorted(failed))} "
                                  f"(log: {ctx.log_path})")
            shutil.rmtree(b / "hurd" / "hurd", ignore_errors=True)
            ctx.run(["make", "-C", str(glibc / "hurd"), f"objdir={b}", *install,
                     f"user-interfaces={' '.join(have)}"], cwd=b)
        (self.root / "glibc-left-out.json").write_text(json.dumps(left_out) + "\n")
        # glibc's RPC stub libraries, built by glibc's own makefiles (libmachuser, libhurduser)
        ctx.run(["make", "-C", str(glibc / "mach"), f"objdir={b}", "subdir_lib"], cwd=b)
        hurd_args = [f"user-interfaces={' '.join(have)}"] if left_out else []
        ctx.run(["make", "-C", str(glibc / "hurd"), f"objdir={b}", "lib", *hurd_args],
                cwd=b, check=False)

    def hurd_library_dirs(self) -> list[tuple[str, Path]]:
        """(library, build directory) for the Hurd's own libraries this Hurd has, then the DDE's."""
        b = self.build / "hurd"
        out = [(n, b / f"lib{n}") for n in HURD_LIBRARIES if (self.work / "hurd" / f"lib{n}").is_dir()
               and n not in DDE_HURD_LIBRARIES[self.gen]]
        return out + [(n, b / f"lib{n}") for n in self.dde_hurd_dirs()]

    def hurd_libraries(self, ctx: StepContext) -> None:
        lib = self.S / LIBDIR
        lib.mkdir(parents=True, exist_ok=True)
        dde_dirs = self.dde_hurd_dirs()
        for name, d in self.hurd_library_dirs():
            if name in dde_dirs:
                # the DDE's directories get configure's build.mk.in, plus what Debian's hurd adds
                d.mkdir(parents=True, exist_ok=True)
                extra = ""
                if name == "ddekit" and self.gen == "2016":
                    # Debian's hurd of 2016 (external.patch) lists experimental among the
                    # Mach .defs found in the C library's include directory
                    extra = "experimental.defs:\n\techo '#include <mach/experimental.defs>' > $@\n"
                # the DDE's code predates the Hurd's -Werror=old-style-definition (2024)
                relax = "CFLAGS += -Wno-error=old-style-definition -Wno-error=strict-prototypes\n"
                (d / "Makefile").write_text(
                    "# porter: the build-directory makefile configure writes for the Hurd's own dirs\n"
                    f"top_srcdir = {self.work / 'hurd'}\nsrcdir = {self.work / 'hurd' / d.name}\n"
                    f"VPATH = $(srcdir)\n{extra}include $(srcdir)/Makefile\n{relax}")
            for stale in d.glob("*.d"):     # dependencies of an earlier try name headers then missing
                stale.unlink()
            ctx.run(["make", "no_deps=t", *self.hurd_install_vars(), "install-headers"], cwd=d)
            ctx.run(["make", self.jobs, f"lib{name}.a"], cwd=d)
            shutil.copy2(d / f"lib{name}.a", lib / f"lib{name}.a")

    def dde_linux(self, ctx: StepContext) -> None:
        work = self.work / "dde"
        shutil.rmtree(work, ignore_errors=True)
        pkg = _dde_pkgdir_name(self.dde)
        for d in (pkg, "libddekit"):    # lib/src includes ../libddekit for <ddekit/*.h>
            shutil.copytree(self.dde.root / d, work / d, symlinks=True,
                            ignore=lambda dd, names: ["build"] if Path(dd).name == pkg else [])
        # ARCH: the incubator's 64-bit-aware include/Makefile links asm-<suffix> from it
        flags = ["ARCH=x86", f"CC={TARGET}-gcc", f"LD={TARGET}-ld", f"AR={TARGET}-ar",
                 f"CARCHFLAGS_x86=-idirafter {COMPAT_DIR} -fno-pie"]
        ctx.run(["make", *flags, "contrib", "include"], cwd=work / pkg)
        ctx.run(["make", self.jobs, *flags], cwd=work / pkg / "lib" / "src")
        # hurd-dev's layout: the libraries beside the others, the build system in share/
        share = self.S / DDE_SHARE
        shutil.rmtree(share, ignore_errors=True)
        share.mkdir(parents=True)
        for f in (work / pkg).glob("Makeconf*"):
            shutil.copy2(f, share / f.name)
        shutil.copytree(work / pkg / "mk", share / "mk", symlinks=True)
        # build/include is a tree of symlinks into the source: installed as files
        shutil.copytree(work / pkg / "build" / "include", share / "build" / "include", symlinks=False)
        for a in (work / pkg / "lib" / "src").glob("libdde_linux26*.a"):
            shutil.copy2(a, self.S / LIBDIR / a.name)

    def pciaccess(self, ctx: StepContext) -> None:
        src = self.copy_source("pciaccess", self.src["pciaccess"].tree)
        # the API header is the same since 0.10: libddekit compiles against it on every Hurd
        shutil.copy2(src / "include" / "pciaccess.h", self.S / "usr/include/pciaccess.h")
        if not (self.S / "usr/include/hurd/pci.defs").is_file():
            # libpciaccess >= 0.15 talks to pci-arbiter (hurd/pci.defs, 2018) only
            (self.root / "pciaccess-missing.txt").write_text(
                "libpciaccess 0.17 needs hurd/pci.defs (pci-arbiter, 2018), which this Hurd lacks\n")
            ctx.note("library skipped: this Hurd has no hurd/pci.defs, which libpciaccess 0.17 needs")
            return
        (self.root / "pciaccess-missing.txt").unlink(missing_ok=True)
        # the cross gcc has no C library to link yet: configure's link tests link nothing
        ctx.run([str(src / "configure"), f"--host={TARGET}", "--prefix=/usr", "--disable-shared",
                 "--enable-static", f"CC={TARGET}-gcc", "LDFLAGS=-nostdlib"], cwd=src)
        ctx.run(["make", self.jobs, "-C", "src"], cwd=src)
        (self.S / LIBDIR).mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / "src" / ".libs" / "libpciaccess.a", self.S / LIBDIR / "libpciaccess.a")

    def symbols(self, ctx: StepContext) -> None:
        libraries: dict[str, dict] = {}
        for a in sorted((self.S / LIBDIR).glob("lib*.a")):
            name = a.name[3:-2]
            libraries[name] = {"from": f"nm {a.relative_to(self.S)}", "symbols": _defined(a)}
        glibc_b = self.build / "glibc"
        for name, sub in (("machuser", "mach"), ("hurduser", "hurd")):
            archive = next((p for p in (glibc_b / sub / f"lib{name}.a", glibc_b / sub / f"lib{name}_pic.a")
                            if p.is_file()), None)
            if archive:
                libraries[name] = {"from": f"nm glibc {sub}/{archive.name}", "symbols": _defined(archive)}
        abidir = self.src["glibc"].tree / "sysdeps" / "mach" / "hurd" / "i386"
        for name in GLIBC_ABILISTS:
            f = abidir / f"lib{name}.abilist"
            if f.is_file():
                libraries[name] = {"from": f"glibc {f.relative_to(self.src['glibc'].tree)}",
                                   "symbols": _abilist(f)}
        libgcc = subprocess.run([str(self.bin / f"{TARGET}-gcc"), "-print-libgcc-file-name"],
                                capture_output=True, text=True).stdout.strip()
        libraries["gcc"] = {"from": f"nm {libgcc}", "symbols": _defined(Path(libgcc))}
        missing = {}
        note = self.root / "pciaccess-missing.txt"
        if note.is_file():
            missing["pciaccess"] = note.read_text().strip()
        left_out = json.loads((self.root / "glibc-left-out.json").read_text())
        self.root.joinpath("symbols.json").write_text(json.dumps(
            {"generation": self.gen, "libraries": libraries, "missing": missing,
             "glibc_left_out": left_out}, indent=0, sort_keys=True) + "\n")

    def steps(self) -> list[Step]:
        ids = {n: c.ident for n, c in self.src.components.items()}
        dde_id = self.dde.root.parent.name
        return [
            Step("tools", self.tools, (str(self.tc.gcc), "wrappers 1", *CLANG_NO_FLOAT128),
                 "compiler wrappers and binutils-i686-gnu links"),
            Step("gnumach-headers", self.gnumach_headers, (ids["gnumach"], "install-data"),
                 f"GNU Mach headers ({ids['gnumach'][:12]})"),
            Step("mig", self.mig, (ids["mig"],), f"MIG for i686-gnu ({ids['mig'][:12]})"),
            Step("hurd-headers", self.hurd_headers, (ids["hurd"], dde_id, *HURD_CONFIGURE),
                 f"the Hurd's headers ({ids['hurd'][:12]})"),
            Step("glibc-headers", self.glibc_headers, (ids["glibc"], "rpc libs 1"),
                 f"glibc {ids['glibc']} headers and RPC stub libraries"),
            Step("pciaccess", self.pciaccess, (ids["pciaccess"],), "libpciaccess"),
            Step("hurd-libraries", self.hurd_libraries, (*HURD_LIBRARIES, dde_id, "libs 1"),
                 "the Hurd's and the DDE's Hurd-side libraries"),
            Step("dde", self.dde_linux, (dde_id, "dde 1"), "libdde_linux26 for i686-gnu"),
            Step("symbols", self.symbols, ("symbols 1", *GLIBC_ABILISTS), "symbol tables of the libraries"),
        ]


def _write_script(path: Path, argv: list[str]) -> None:
    path.unlink(missing_ok=True)
    path.write_text(f"#!/bin/sh\n# porter: written for this sysroot\nexec {shlex.join(argv)} \"$@\"\n")
    path.chmod(0o755)


def _make_variable(directory: Path, objdir: Path, variable: str) -> list[str]:
    """A variable's value as glibc's makefile for one directory computes it."""
    r = subprocess.run(["make", "-s", "-C", str(directory), f"objdir={objdir}", "-p", "-n", "-q",
                        "nothing-porter"], capture_output=True, text=True)
    m = re.search(rf"^{re.escape(variable)} :?= (.*)$", r.stdout, re.M)
    return m.group(1).split() if m else []


def _defined(archive: Path) -> list[str]:
    r = subprocess.run(["nm", "-P", "-g", "--defined-only", str(archive)], capture_output=True,
                       text=True, env=dict(os.environ, LC_ALL="C"))
    return sorted({line.split()[0] for line in r.stdout.splitlines()
                   if line.strip() and not line.endswith(":") and len(line.split()) >= 2})


def _abilist(path: Path) -> list[str]:
    # lines: "GLIBC_2.2.6 malloc F" / "GLIBC_2.2.6 errno D 0x4"
    return sorted({parts[1] for parts in (line.split() for line in path.read_text().splitlines())
                   if len(parts) >= 3})


def ensure_sysroot(sources: SetSources, dde: DdeTree, toolchain: Toolchain, log=print) -> Sysroot:
    got = gen.of_dde_tree(dde.root)
    if got.name != sources.generation:
        raise PorterError(f"the DDE tree {dde.root} is of the {got.name} generation, the Hurd sources "
                          f"of {sources.generation}")
    root = sysroot_root(sources.generation, dde)
    recipe = _Recipe(sources, dde, toolchain, root)
    run_steps(root, recipe.steps(), Sysroot(sources.generation, root).env(),
              log=lambda m: log(f"sysroot {sources.generation}: {m}"))
    return Sysroot(sources.generation, root)


def cached_sysroot(sources: SetSources, dde: DdeTree, toolchain: Toolchain) -> Sysroot | None:
    root = sysroot_root(sources.generation, dde)
    if not steps_done(root, _Recipe(sources, dde, toolchain, root).steps()):
        return None
    return Sysroot(sources.generation, root)
