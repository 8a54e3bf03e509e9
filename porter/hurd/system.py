"""A minimal GNU/Hurd that boots in QEMU with a ported tree as its netdde, built
from the same sources as the sysroot (porter/hurd/sysroot.py) into porter's cache.

On top of the sysroot's steps: glibc built whole with the cross gcc (glibc links
its own libraries with -lgcc only, so the C-only gcc is enough); the Hurd
configured again against it, with the core servers and pfinet, devnode,
pci-arbiter, term and console-run linked static (no ld.so at boot); GNU Mach
itself.  Per tree: the tree built with its own Makefile, linked static, and an
ext2 image (mke2fs -d, with passive translator records written by debugfs into
the gnu.translator attribute that the Hurd's ext2fs reads).

The boot: GNU Mach with ext2fs and exec as multiboot modules (QEMU -kernel /
-initrd); ext2fs starts exec, startup, proc and auth; startup runs
/usr/libexec/runsystem (porter's porter_init.c), which opens a socket and so
starts pfinet, devnode, netdde and pci-arbiter from their translator records.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import SHIMS_DIR
from ..buildsteps import Step, StepContext, run_steps, steps_done
from ..dde import DdeTree
from ..tree import tree_report
from .sources import SetSources, hurd_root
from .sysroot import HURD_CONFIGURE, _Recipe
from .toolchain import TARGET, Toolchain

# the servers the image holds: (build directory, program, where it goes in the image)
SERVERS = (("ext2fs", "ext2fs", "hurd/ext2fs"), ("exec", "exec", "hurd/exec"),
           ("startup", "startup", "hurd/startup"), ("proc", "proc", "hurd/proc"), ("auth", "auth", "hurd/auth"),
           ("term", "term", "hurd/term"), ("pfinet", "pfinet", "hurd/pfinet"), ("devnode", "devnode", "hurd/devnode"),
           ("pci-arbiter", "pci-arbiter", "hurd/pci-arbiter"), ("daemons", "console-run", "usr/libexec/console-run"))
LIBS_FIRST = ("libshouldbeinlibc", "libihash", "libiohelp", "libports", "libpager", "libfshelp", "libdiskfs",
              "libtrivfs", "libps", "libnetfs", "libpipe", "libstore", "libhurdbugaddr", "libhurd-slab", "libbpf",
              "libirqhelp", "libmachdev", "libcons")
HOST_ADDRESS, HURD_ADDRESS, NETMASK = "192.0.2.1", "192.0.2.2", "255.255.255.0"
# the image's passive translators (node -> argv), as Debian's MAKEDEV and setup-translators set them
TRANSLATORS = {
    "dev/console": ["/hurd/term", "/dev/console", "device", "console"],
    "dev/netdde": ["/hurd/netdde"],
    "dev/eth0": ["/hurd/devnode", "-M", "/dev/netdde", "eth0"],
    "servers/socket/2": ["/hurd/pfinet", "-i", "/dev/eth0", "-a", HURD_ADDRESS, "-m", NETMASK, "-g", HOST_ADDRESS],
    "servers/bus/pci": ["/hurd/pci-arbiter"],
}
INIT_SOURCE = SHIMS_DIR / "hurd-image" / "porter_init.c"


@dataclass(frozen=True)
class System:
    root: Path

    @property
    def kernel(self) -> Path:
        return self.root / "gnumach" / "gnumach"

    @property
    def servers(self) -> Path:
        return self.root / "servers"


@dataclass(frozen=True)
class Image:
    root: Path                 # the image's cache directory
    system: System

    @property
    def disk(self) -> Path:
        return self.root / "disk.img"

    @property
    def staging(self) -> Path:
        return self.root / "root"

    def modules(self) -> list[str]:
        """QEMU -initrd modules: the bootstrap file system and exec (a module's path is its argv[0])."""
        s = self.staging
        return [f"{s / 'hurd/ext2fs'} --multiboot-command-line=${{kernel-command-line}} "
                f"--host-priv-port=${{host-port}} --device-master-port=${{device-port}} "
                f"--exec-server-task=${{exec-task}} -T typed ${{root}} $(task-create) $(task-resume)",
                f"{s / 'hurd/exec'} $(exec-task=task-create)"]


class _SystemRecipe(_Recipe):
    def glibc_full(self, ctx: StepContext) -> None:
        glibc = self.src["glibc"].tree
        b = self.fresh(self.build / "glibc-full")
        host = subprocess.run(["gcc", "-dumpmachine"], capture_output=True, text=True).stdout.strip()
        # CXX empty: glibc's C++ tests would take the host's g++; MAKEINFO: Debian's tarball has no manual
        ctx.run([str(glibc / "configure"), f"--host={TARGET}", f"--build={host}", "--prefix=/usr",
                 f"--with-headers={self.S / 'usr/include'}", "--disable-werror", "--disable-nscd",
                 "--without-selinux", "--enable-stack-protector=no", f"CC={TARGET}-gcc", "CXX=",
                 f"MIG={TARGET}-mig"], cwd=b)
        ctx.run(["make", self.jobs, "CXX=", "MAKEINFO=:"], cwd=b)
        ctx.run(["make", "install", "CXX=", "MAKEINFO=:", f"DESTDIR={self.S}"], cwd=b)

    def hurd_servers(self, ctx: StepContext) -> None:
        src = self.copy_source("hurd-system", self.src["hurd"].tree)
        ctx.run(["autoreconf", "-fi"], cwd=src)
        b = self.fresh(self.build / "hurd-system")
        # real link tests now; libpciaccess (for pci-arbiter) from the sysroot, without pkg-config
        configure = [a for a in HURD_CONFIGURE if not a.startswith(("ac_cv_", "PKG_CONFIG"))]
        ctx.run([str(src / "configure"), f"--host={TARGET}", "--prefix=/usr", f"MIG={TARGET}-mig",
                 "PKG_CONFIG=/bin/false", "libpciaccess_CFLAGS= ",
                 f"libpciaccess_LIBS=-L{self.S / 'usr/lib/i386-gnu'} -lpciaccess", *configure], cwd=b)
        ctx.run(["make", self.jobs, *LIBS_FIRST], cwd=b)
        out = self.fresh(self.root / "servers")
        for directory, program, _ in SERVERS:
            d = b / directory
            extra = []
            if directory == "daemons":
                # a directory of several programs: its static links need their objects named
                frag = self.build / "console-run-static.mk"
                frag.write_text("console-run.static: console-run.o ../libfshelp/libfshelp.a ../libports/libports.a "
                                "../libihash/libihash.a ../libshouldbeinlibc/libshouldbeinlibc.a\n")
                extra = ["-f", "Makefile", "-f", str(frag)]
            ctx.run(["make", *extra, f"{program}.static", f"{program}.static-LDLIBS=-lpthread"], cwd=d)
            shutil.copy2(d / f"{program}.static", out / program)

    def gnumach_kernel(self, ctx: StepContext) -> None:
        src = self.copy_source("gnumach-kernel", self.src["gnumach"].tree)
        ctx.run(["autoreconf", "-fi"], cwd=src)
        b = self.fresh(self.root / "gnumach")
        # the Linux drivers stay for the IDE disk; no network drivers (the NIC is netdde's)
        ctx.run([str(src / "configure"), f"--host={TARGET}", "--prefix=/usr", "--disable-net-group",
                 "--disable-pcmcia-group", "--disable-wireless-group", f"MIG={TARGET}-mig",
                 "CFLAGS=-O2 -g -fno-pie", "LDFLAGS=-no-pie"], cwd=b)
        ctx.run(["make", self.jobs, "gnumach"], cwd=b)

    def system_steps(self) -> list[Step]:
        ids = {n: c.ident for n, c in self.src.components.items()}
        return [*self.steps(),
                Step("glibc", self.glibc_full, (ids["glibc"],), f"glibc {ids['glibc']}, whole (about 5 minutes)"),
                Step("hurd-servers", self.hurd_servers, (ids["hurd"], *(s[1] for s in SERVERS)),
                     "the Hurd's servers, linked static"),
                Step("gnumach", self.gnumach_kernel, (ids["gnumach"],), f"GNU Mach {ids['gnumach'][:12]}")]


def system_root(generation: str, dde: DdeTree) -> Path:
    return hurd_root() / "system" / f"{generation}-{dde.root.parent.name}"


def ensure_system(sources: SetSources, dde: DdeTree, toolchain: Toolchain, log=print) -> System:
    root = system_root(sources.generation, dde)
    recipe = _SystemRecipe(sources, dde, toolchain, root)
    run_steps(root, recipe.system_steps(), _env(root), log=lambda m: log(f"hurd {sources.generation}: {m}"))
    return System(root)


def cached_system(sources: SetSources, dde: DdeTree, toolchain: Toolchain) -> System | None:
    root = system_root(sources.generation, dde)
    if not steps_done(root, _SystemRecipe(sources, dde, toolchain, root).system_steps()):
        return None
    return System(root)


def _env(root: Path) -> dict:
    return dict(os.environ, PATH=f"{root / 'tools' / 'bin'}:{os.environ.get('PATH', '')}", LC_ALL="C")


def _tree_id(tree: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(tree.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(tree)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def image_steps(system: System, tree: Path, root: Path) -> list[Step]:
    sysroot = system.root / "sysroot"
    env_bin = system.root / "tools" / "bin"
    gcc = env_bin / f"{TARGET}-gcc"

    def netdde(ctx: StepContext) -> None:
        work = root / "tree"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(tree, work, symlinks=True)
        ctx.run(["make", f"PKGDIR={sysroot / 'usr/share/libdde_linux26'}", f"HURD_LIBDIR={sysroot / 'usr/lib/i386-gnu'}",
                 f"CC={gcc}", f"SYSTEM_TARGET={TARGET}-", f"LINK_PROGRAM={gcc} -static"], cwd=work)

    def init(ctx: StepContext) -> None:
        ctx.run([str(gcc), "-static", "-O2", "-Wall", "-o", str(root / "porter_init"), str(INIT_SOURCE)], cwd=root)

    def image(ctx: StepContext) -> None:
        stage = root / "root"
        shutil.rmtree(stage, ignore_errors=True)
        for d in ("hurd", "usr/libexec", "servers/socket", "servers/bus", "dev", "tmp", "etc"):
            (stage / d).mkdir(parents=True, exist_ok=True)
        for _, program, dest in SERVERS:
            shutil.copy2(system.servers / program, stage / dest)
        target = tree_report(tree)["target"]
        shutil.copy2(root / "tree" / target, stage / "hurd/netdde")
        shutil.copy2(root / "porter_init", stage / "usr/libexec/runsystem")
        for f in [*stage.glob("hurd/*"), *stage.glob("usr/libexec/*")]:
            ctx.run([f"{TARGET}-strip", str(f)], cwd=root)
        # nodes the core servers expect to exist, and those that carry translators
        for node in ("servers/exec", "servers/startup", "servers/crash", "servers/proc", "servers/auth",
                     *TRANSLATORS):
            (stage / node).touch()
        disk = root / "disk.img"
        disk.unlink(missing_ok=True)
        ctx.run(["mke2fs", "-q", "-F", "-t", "ext2", "-b", "4096", "-I", "128", "-o", "hurd", "-d", str(stage),
                 str(disk), "64M"], cwd=root)
        for node, argv in TRANSLATORS.items():
            # the record settrans writes: the argz of the translator's command line
            value = root / "translator.bin"
            value.write_bytes(b"".join(a.encode() + b"\0" for a in argv))
            ctx.run(["debugfs", "-w", "-R", f"ea_set -f {value} /{node} gnu.translator", str(disk)], cwd=root)
            value.unlink()

    tid = _tree_id(tree)
    return [Step("netdde", netdde, (tid, str(system.root)), "the tree, built with its own Makefile, linked static"),
            Step("init", init, (INIT_SOURCE.read_text(),), "porter's runsystem (porter_init.c)"),
            Step("image", image, (tid, json.dumps(TRANSLATORS)), "the ext2 image with its translator records")]


def image_root(tree: Path) -> Path:
    return hurd_root() / "images" / _tree_id(tree)


def ensure_image(system: System, tree: Path, log=print) -> Image:
    tree = tree.resolve()
    root = image_root(tree)
    run_steps(root, image_steps(system, tree, root), _env(system.root), log=lambda m: log(f"image: {m}"))
    return Image(root, system)


def kvm_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def boot_command(image: Image, log: Path, accel: str, extra: list[str] = ()) -> list[str]:
    return ["qemu-system-i386", "-m", "1024", "-accel", accel, "-kernel", str(image.system.kernel),
            "-append", "root=device:hd0 console=com0", "-initrd", ",".join(image.modules()),
            "-drive", f"file={image.disk},format=raw,if=ide,snapshot=on",
            "-display", "none", "-monitor", "none", "-serial", f"file:{log}", "-no-reboot", *extra]


def boot(image: Image, until: str, timeout: float, extra: list[str] = (), accel: str | None = None,
         log_path: Path | None = None) -> tuple[str, str]:
    """Boot the image until the console shows `until` (or timeout); (console text, accelerator).
    KVM when /dev/kvm works for GNU Mach; some hosts' KVM resets a 32-bit Mach at once (seen
    here: a triple fault under kvm-pvm), and then TCG."""
    import time
    log = log_path or Path(tempfile.mkstemp(prefix="porter-hurd-", suffix=".log")[1])
    for attempt in ([accel] if accel else (["kvm", "tcg"] if kvm_usable() else ["tcg"])):
        log.write_text("")
        proc = subprocess.Popen(boot_command(image, log, attempt, list(extra)), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                text = log.read_text(errors="replace")
                if until in text:
                    return text, attempt
                if proc.poll() is not None:
                    break
                time.sleep(0.5)
        finally:
            proc.kill()
            proc.wait()
        text = log.read_text(errors="replace")
        if "GNU Mach" in text or until in text:
            return text, attempt      # Mach ran under this accelerator: its console says what happened
    return log.read_text(errors="replace"), attempt
