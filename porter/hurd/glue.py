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
from dataclasses import asdict, dataclass, field
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


def hurd_glue(dde_root: Path, hurd_tree: Path | None = None) -> HurdGlue:
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
