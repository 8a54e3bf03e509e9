"""Which generation of the Hurd's driver interfaces a source tree belongs to, by
testing its files (as the rules test sources), never by a version number.

- "2016": libmachdev lives in the DDE tree and exports register_net, ds_server,
  mach_device_init, trivfs_init and trivfs_server (the Debian hurd tree's dde
  branch, netdde of 2015).
- "2020": hurd.git carries libmachdev with the machdev_* API (machdev_register,
  machdev_trivfs_init, ...) and the DDE's libmachdevdde registers Linux devices
  with it (machdevdde_register_net); since 2020-03.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from .. import PorterError

GENERATIONS = ("2016", "2020")


@dataclass(frozen=True)
class Generation:
    name: str
    evidence: str        # the file and declaration that decided it


def _declares(path: Path, function: str) -> bool:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return re.search(rf"\b{re.escape(function)}\s*\(", text) is not None


def of_dde_tree(root: Path) -> Generation:
    """The generation of a DDE tree (the directory holding libddekit and libdde*linux26)."""
    dde_header = root / "libmachdevdde" / "machdevdde.h"
    if _declares(dde_header, "machdevdde_server") or _declares(dde_header, "machdevdde_register_net"):
        return Generation("2020", f"{dde_header.relative_to(root)} declares machdevdde_*")
    old = root / "libmachdev" / "machdev.h"
    if _declares(old, "register_net"):
        return Generation("2016", f"{old.relative_to(root)} declares register_net")
    raise PorterError(f"{root}: cannot tell the Hurd generation of this DDE tree: neither "
                      f"libmachdevdde/machdevdde.h (machdevdde_*, 2020 on) nor libmachdev/machdev.h "
                      f"with register_net (2016) is there")


def of_hurd_tree(root: Path) -> Generation:
    """The generation of a Hurd source tree (hurd.git)."""
    header = root / "libmachdev" / "machdev.h"
    if _declares(header, "machdev_register"):
        return Generation("2020", "libmachdev/machdev.h declares machdev_register")
    if not header.exists() and (root / "libtrivfs").is_dir():
        return Generation("2016", "no libmachdev/ (the DDE tree carries it)")
    raise PorterError(f"{root}: cannot tell the Hurd generation: libmachdev/machdev.h "
                      "neither declares machdev_register nor is absent")


def device_intr_register_form(gnumach: Path) -> str:
    """How GNU Mach's device.defs declares device_intr_register: the parameter names."""
    defs = gnumach / "include" / "device" / "device.defs"
    text = defs.read_text(errors="replace") if defs.is_file() else ""
    m = re.search(r"routine\s+device_intr_register\s*\((.*?)\)\s*;", text, re.S)
    if not m:
        return "absent"
    names = [p.split(":")[0].split()[-1] for p in m.group(1).split(";") if ":" in p]
    return ", ".join(names)
