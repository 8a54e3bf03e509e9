"""What the tree's Hurd glue calls, feature-tested from the DDE tree (and, for the
2020 generation, hurd.git's libmachdev when porter's cache has it), the way the
rules test Linux sources: by the declarations that are there, not by versions.

The result is plain data the templates render: main.c (the Linux side: the
DDE's start-up) calls porter_machdev_start() in machdev_glue.c, the Hurd side,
which never includes a Linux header (today's <hurd/machdev.h> pulls glibc's
errno and typedefs, which clash with the DDE's Linux headers).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .. import PorterError
from . import generation as gen

# The libraries each generation's netdde links (netdde's own Makefile of that
# generation, without -lz and -lcrypt which virtio drivers do not need).
LIBS = {
    "2016": ("-lmachdev", "-ldde_linux26.o", "-ldde_linux26_net", "-lddekit", "-lfshelp", "-ltrivfs",
             "-lpciaccess", "-lpthread", "-lshouldbeinlibc", "-lports", "-lhurd-slab", "-lbpf"),
    "2020": ("-lmachdevdde", "-lmachdev", "-ldde_linux26.o", "-ldde_linux26_net", "-lddekit",
             "-ltrivfs", "-lpciaccess", "-lshouldbeinlibc", "-lports", "-liohelp", "-lfshelp",
             "-lihash", "-lpthread", "-lirqhelp", "-lhurd-slab", "-lbpf"),
}
# Bundles (their glue templates) whose glue is a translator of its own (trivfs), not netdde's libmachdev device
# server: what they link instead (no libmachdev, no libbpf, no net library of the DDE).
BUNDLE_LIBS = {
    "virtio-rng": {
        "2016": ("-ldde_linux26.o", "-lddekit", "-ltrivfs", "-lfshelp", "-lports", "-liohelp", "-lihash",
                 "-lpciaccess", "-lpthread", "-lshouldbeinlibc", "-lhurd-slab"),
        "2020": ("-ldde_linux26.o", "-lddekit", "-ltrivfs", "-lfshelp", "-lports", "-liohelp", "-lihash",
                 "-lpciaccess", "-lirqhelp", "-lpthread", "-lshouldbeinlibc", "-lhurd-slab"),
    },
}
# The Hurd functions such a bundle's machdev_glue.c calls (PORTING.md names them)
BUNDLE_CALLS = {"virtio-rng": ("trivfs_startup", "ports_manage_port_operations_multithread")}
# hurd.git's libmachdev as of 2022-09 on (what porter assumes when it cannot read it)
CURRENT_LIBMACHDEV = {"trivfs_init": "argc, argv, resume, name, path, &bootstrap",
                      "trivfs_server": "startup+loop"}


@dataclass(frozen=True)
class HurdGlue:
    generation: str
    evidence: list[str] = field(default_factory=list)   # one line per decision: what decided it
    register_net: str = "register_net"          # registers the Linux net devices with libmachdev
    register_declared: bool = True              # its header declares it
    device_server: str = "ds_server"            # the device RPC server loop (a thread)
    device_init: str = "mach_device_init"
    trivfs_init: str = ""                       # "" (2016: trivfs_init()) or the 2020 argument form
    trivfs_server: str = "trivfs_server"        # 2020: "startup+loop", "bootstrap" or "plain"
    headers: tuple[str, ...] = ("hurd/machdev.h",)
    libs: tuple[str, ...] = ()
    # a block bundle's glue registers its own device emulation (libmachdev's block.c is
    # left out of both generations' builds); empty for a net bundle
    block_ops: str = ""                         # the operations table's struct
    block_emul_device: str = ""                 # what a device port carries after its port_info
    block_register: str = ""                    # registers the table with libmachdev
    block_create_port: str = ""                 # makes a device port in libmachdev's bucket
    block_declared: bool = True                 # installed headers declare all four
    block_open_name: str = "const char *"       # the open operation's name parameter
    calls: tuple[str, ...] = ()                 # what machdev_glue.c calls of the Hurd, for PORTING.md

    def as_context(self) -> dict:
        return asdict(self)


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _prototype(text: str, function: str) -> str | None:
    """The parameter list a header declares for function, whitespace folded."""
    m = re.search(rf"\b{re.escape(function)}\s*\(([^)]*)\)\s*;", text)
    return " ".join(m.group(1).split()) if m else None


def _defines(sources: list[Path], function: str) -> Path | None:
    for src in sources:
        if re.search(rf"^\w[\w\s\*]*\b{re.escape(function)}\s*\([^;]*$", _text(src), re.M):
            return src
    return None


def hurd_glue(dde_root: Path, hurd_tree: Path | None = None, dde_libraries=("net",),
              templates: str = "virtio-net") -> HurdGlue:
    """The glue of templates/<templates>/ (a bundle's, Bundle.glue_templates) for a bundle linking
    ``dde_libraries`` (libdde_linux26_<name>) besides libdde_linux26.o: netdde's kind (libmachdev's
    device server) unless BUNDLE_LIBS names the bundle's own libraries and calls."""
    glue = _interfaces(dde_root, hurd_tree)
    if templates in BUNDLE_LIBS:
        # a translator of its own: libmachdev's API does not concern it, only what decided the
        # generation stays as evidence
        return replace(glue, evidence=glue.evidence[:1], libs=BUNDLE_LIBS[templates][glue.generation],
                       calls=BUNDLE_CALLS[templates])
    if tuple(dde_libraries) != ("net",):
        glue = _bundle_glue(glue, dde_root, hurd_tree, tuple(dde_libraries))
    return replace(glue, calls=(glue.block_register or glue.register_net, glue.device_init, glue.device_server))


def _interfaces(dde_root: Path, hurd_tree: Path | None) -> HurdGlue:
    g = gen.of_dde_tree(dde_root)
    if g.name == "2016":
        return HurdGlue("2016", [g.evidence], libs=LIBS["2016"])

    evidence = [g.evidence]
    dde_dir = dde_root / "libmachdevdde"
    sources = sorted(dde_dir.glob("*.c"))
    # the registration function was register_net in the incubator's first libmachdevdde
    # (2020-03, not in machdevdde.h) and machdevdde_register_net later
    header = _text(dde_dir / "machdevdde.h")
    if _defines(sources, "machdevdde_register_net"):
        register, declared = "machdevdde_register_net", "machdevdde_register_net" in header
        evidence.append("libmachdevdde defines machdevdde_register_net")
    else:
        where = _defines(sources, "register_net")
        register, declared = "register_net", False
        evidence.append(f"libmachdevdde/{where.name if where else '?'} defines register_net, "
                        "which machdevdde.h does not declare")

    if hurd_tree is not None:
        machdev_h = _text(hurd_tree / "libmachdev" / "machdev.h")
        init = _prototype(machdev_h, "machdev_trivfs_init")
        n_args = 0 if init in (None, "", "void") else len(init.split(","))
        trivfs_init = {6: "argc, argv, resume, name, path, &bootstrap",
                       4: "resume, name, path, &bootstrap", 0: ""}.get(n_args)
        if trivfs_init is None:
            raise PorterError(f"{hurd_tree}/libmachdev/machdev.h: machdev_trivfs_init({init}) "
                                  "has a form porter does not know")
        if _prototype(machdev_h, "machdev_trivfs_server_startup") is not None:
            server = "startup+loop"
        elif (_prototype(machdev_h, "machdev_trivfs_server") or "void") not in ("", "void"):
            server = "bootstrap"
        else:
            server = "plain"
        evidence.append(f"hurd.git libmachdev/machdev.h: machdev_trivfs_init({init}); "
                        f"trivfs server: {server}")
    else:
        trivfs_init, server = CURRENT_LIBMACHDEV["trivfs_init"], CURRENT_LIBMACHDEV["trivfs_server"]
        evidence.append("hurd.git's libmachdev not in porter's cache: its API as of 2022-09 on is assumed "
                        "(`porter fetch --hurd` lets porter read it)")
    return HurdGlue("2020", evidence, register_net=register, register_declared=declared,
                    device_server="machdevdde_server", device_init="machdev_device_init",
                    trivfs_init=trivfs_init, trivfs_server=server,
                    headers=("hurd/machdev.h", "hurd/machdevdde.h"), libs=LIBS["2020"])


# ---- a bundle's own libraries, and a block bundle's device emulation ---------------------

# The operations of 2016 libmachdev's struct device_emulation_ops (device_emul.h, not installed
# by hurd-dev), in its order: porter's glue declares the table with this layout.
DEVICE_EMULATION_OPS_2016 = ("init", "reference", "dealloc", "dev_to_port", "open", "close", "write",
                             "write_inband", "read", "read_inband", "set_status", "get_status",
                             "set_filter", "map", "no_senders", "write_trap", "writev_trap")


def _struct_members(text: str, struct: str) -> tuple[str, ...] | None:
    """The function-pointer members of ``struct <name> { ... };`` in order, or None."""
    m = re.search(rf"struct\s+{re.escape(struct)}\s*\{{(.*?)\}};", text, re.S)
    return tuple(re.findall(r"\(\s*\*\s*(\w+)\s*\)", m.group(1))) if m else None


def _bundle_glue(glue: HurdGlue, dde_root: Path, hurd_tree: Path | None, libraries: tuple[str, ...]) -> HurdGlue:
    from dataclasses import replace
    libs = tuple(lib for lib in glue.libs if lib != "-ldde_linux26_net")
    at = libs.index("-ldde_linux26.o") + 1
    libs = libs[:at] + tuple(f"-ldde_linux26_{name}" for name in libraries) + libs[at:]
    if "block" not in libraries:
        return replace(glue, libs=libs)
    evidence = list(glue.evidence)
    if glue.generation == "2016":
        machdev = dde_root / "libmachdev"
        routines = [machdev / "ds_routines.c"]
        for fn in ("reg_dev_emul", "create_device_port"):
            if not _defines(routines, fn):
                raise PorterError(f"{machdev}/ds_routines.c does not define {fn}(), which porter's 2016 "
                                  "block glue registers its disks with")
        members = _struct_members(_text(machdev / "device_emul.h"), "device_emulation_ops")
        if members != DEVICE_EMULATION_OPS_2016:
            raise PorterError(f"{machdev}/device_emul.h: struct device_emulation_ops has "
                              f"{members or 'no operations porter can read'}; porter's 2016 block glue "
                              f"declares {', '.join(DEVICE_EMULATION_OPS_2016)}")
        evidence.append("libmachdev/ds_routines.c defines reg_dev_emul and create_device_port; "
                        "device_emul.h (not installed) lays out the 17 operations the glue declares")
        return replace(glue, libs=libs, evidence=evidence, block_ops="device_emulation_ops",
                       block_emul_device="emul_device", block_register="reg_dev_emul",
                       block_create_port="create_device_port", block_declared=False,
                       block_open_name="char *")
    open_name = "const char *"
    if hurd_tree is not None:
        machdev_h = _text(hurd_tree / "libmachdev" / "machdev.h")
        for fn in ("machdev_register", "machdev_create_device_port"):
            if _prototype(machdev_h, fn) is None:
                raise PorterError(f"{hurd_tree}/libmachdev/machdev.h does not declare {fn}(), which "
                                  "porter's 2020 block glue registers its disks with")
        emul = _text(hurd_tree / "libmachdev" / "machdev-device_emul.h")
        m = re.search(r"\(\s*\*\s*open\s*\)\s*\(([^)]*)\)", emul)
        if m and "const char" not in m.group(1):
            open_name = "char *"
        evidence.append("hurd.git libmachdev/machdev.h declares machdev_register and "
                        f"machdev_create_device_port; open takes {open_name.strip()}")
    else:
        evidence.append("block glue: hurd.git's machdev_register and machdev_create_device_port assumed")
    return replace(glue, libs=libs, evidence=evidence, block_ops="machdev_device_emulation_ops",
                   block_emul_device="machdev_emul_device", block_register="machdev_register",
                   block_create_port="machdev_create_device_port", block_declared=True,
                   block_open_name=open_name)
