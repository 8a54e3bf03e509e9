"""The DDE input: recognise a DDE tree, lay out its include tree, give its compile line."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from . import PorterError
from .cache import dde_root

# Debian's hurd tree (2016) names the Linux layer libdde-linux26; the Hurd
# incubator's dde branch names it libdde_linux26.
PKGDIR_NAMES = ("libdde-linux26", "libdde_linux26")


@dataclass(frozen=True)
class DdeTree:
    root: Path          # holds the libdde-linux26 and libddekit directories
    pkgdir: Path        # libdde-linux26 (PKGDIR of the DDE's makefiles)
    ddekit: Path        # libddekit (its ddekit/*.h are the DDEKit API)
    origin: dict        # where it came from (recorded at fetch time)

    @property
    def obj_base(self) -> Path:
        """OBJ_BASE of the DDE's Makeconf.local: where its install puts include/."""
        return self.pkgdir / "build"

    def include_dirs(self) -> list[Path]:
        """-I directories in the order the DDE's Makeconf and mk/binary.inc give."""
        ob = self.obj_base / "include"
        return [ob / "x86", ob, ob / "linux-headers/asm/mach-default",
                ob / "x86/linux-headers", ob / "x86/asm", ob / "linux-headers",
                self.ddekit, Path("."), ob / "x86", ob, self.pkgdir / "include"]

    def compile_flags(self, module: str, first_includes: list[Path] = (), m32: bool = True) -> list[str]:
        """The DDE's own flags for one Linux source (module = object basename).

        first_includes go before the DDE's directories: a driver tree's own
        include/ (its newer virtio headers must win over the DDE's 2.6.29 ones)."""
        flags = ["-m32"] if m32 else []
        flags += ["-include", "linux/autoconf.h", "-D__KERNEL__", "-DDDE_LINUX",
                  "-DKBUILD_STR(s)=#s", f"-DKBUILD_BASENAME=KBUILD_STR({module})",
                  f"-DKBUILD_MODNAME=KBUILD_STR({module})", "-DRAM_BASE=0x0",
                  "-DSYSTEM_x86_l4v2", "-DARCH_x86", "-DCPUTYPE_", "-DL4API_"]
        flags += [f"-I{d}" for d in first_includes]
        flags += [f"-I{d}" for d in self.include_dirs()]
        flags += ["-g", "-ffunction-sections", "-fno-strict-aliasing", "-Wall",
                  "-Wstrict-prototypes", "-Wno-unused", "-Wno-pointer-sign", "-fno-common"]
        return flags


def is_dde_tree(root: Path) -> Path | None:
    """The PKGDIR inside root if root looks like a DDE tree, else None."""
    for name in PKGDIR_NAMES:
        pkg = root / name
        if (pkg / "Makeconf").is_file() and (pkg / "mk").is_dir() and (pkg / "contrib").is_dir():
            if (root / "libddekit" / "ddekit" / "pci.h").is_file():
                return pkg
    return None


def describe_not_dde(root: Path) -> str:
    return (f"{root} is not a DDE tree: expected libdde-linux26/ (with Makeconf, mk/, contrib/) "
            f"and libddekit/ddekit/*.h beside it. Give the Hurd incubator's 'dde' branch "
            f"(git directory or checkout) or a Debian hurd source tree")


def open_dde_tree(root: Path, origin: dict | None = None) -> DdeTree:
    pkg = is_dde_tree(root)
    if pkg is None:
        raise PorterError(describe_not_dde(root))
    if origin is None:
        origin_file = root.parent / "origin.json"
        origin = json.loads(origin_file.read_text()) if origin_file.is_file() else {"path": str(root)}
    return DdeTree(root, pkg, root / "libddekit", origin)


def layout_includes(tree: DdeTree) -> None:
    """Create OBJ_BASE/include as the DDE's own install would (relative symlinks)."""
    ob = tree.obj_base / "include"
    contrib_inc = tree.pkgdir / "contrib" / "include"
    links: dict[Path, Path] = {}
    for d in sorted(contrib_inc.iterdir()):
        if d.is_dir():
            links[ob / "linux-headers" / d.name] = d
    links[ob / "linux-headers" / "asm"] = tree.pkgdir / "contrib/arch/x86/include/asm"
    own_inc = tree.pkgdir / "include"
    for entry in sorted(own_inc.iterdir()):
        if entry.name in ("linux", "net") or entry.name.startswith("dde26"):
            links[ob / entry.name] = entry
    links[ob / "x86" / "asm-x86"] = own_inc / "ARCH-x86" / "asm-x86"
    links[ob / "x86" / "asm"] = ob / "x86" / "asm-x86"
    for link, target in links.items():
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(target, link.parent))


DDE_FILES_NAME = "files.sha256"     # beside a cached tree's src/: what `porter fetch --dde` brought


def _tree_files(src: Path) -> dict[str, str]:
    """relative path -> sha256 of every file of a DDE tree (not build/, which porter lays out)."""
    import hashlib
    out = {}
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if len(rel.parts) > 1 and rel.parts[1] == "build" and rel.parts[0] in PKGDIR_NAMES:
            continue
        if p.is_file() and not p.is_symlink():
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def write_dde_manifest(src: Path, path: Path) -> None:
    path.write_text("".join(f"{digest}  {rel}\n" for rel, digest in _tree_files(src).items()))


_verified: set[Path] = set()


def verify_cached_dde(src: Path) -> None:
    """A cached DDE tree is what `porter fetch --dde` brought, or porter refuses it."""
    if src in _verified:
        return
    from . import statmemo
    record = src.parent / DDE_FILES_NAME
    paths = statmemo.tree_paths(src, lambda parts: len(parts) > 1 and parts[1] == "build"
                                and parts[0] in PKGDIR_NAMES)
    fp = statmemo.fingerprint([record, *paths])
    if statmemo.recall("dde-verified", fp):
        _verified.add(src)
        return
    if record.is_file():
        expected = dict(reversed(line.split("  ", 1)) for line in record.read_text().splitlines() if line)
        actual = _tree_files(src)
        changed = sorted(set(expected) ^ set(actual) | {r for r in expected if actual.get(r, expected[r]) != expected[r]})
        if changed:
            raise PorterError(f"{src / changed[0]}: the cached DDE tree changed since it was fetched "
                              f"({len(changed)} file(s)); run `porter fetch --dde` (with --from PATH) again")
    statmemo.remember("dde-verified", fp, True)
    _verified.add(src)


def current_dde() -> DdeTree | None:
    """The DDE tree to use: PORTER_DDE_TREE, else the one last fetched into the cache."""
    env = os.environ.get("PORTER_DDE_TREE")
    if env:
        tree = open_dde_tree(Path(env))
        if not (tree.obj_base / "include" / "linux-headers").is_dir():
            layout_includes(tree)
        return tree
    marker = dde_root() / "CURRENT"
    if not marker.is_file():
        return None
    src = dde_root() / marker.read_text().strip() / "src"
    if not src.is_dir():
        return None
    verify_cached_dde(src)
    return open_dde_tree(src)


def cached_dde_trees() -> list[DdeTree]:
    """Every DDE tree `porter fetch --dde` brought into the cache, the current one first."""
    trees = []
    current = current_dde()
    if current is not None:
        trees.append(current)
    for src in sorted(dde_root().glob("*/src")):
        if is_dde_tree(src) is not None and (current is None or src.resolve() != current.root.resolve()):
            verify_cached_dde(src)
            trees.append(open_dde_tree(src))
    return trees


def select_dde(choice: str) -> DdeTree:
    """A DDE tree named by a cache id, a generation ("2016", "2020") or a path."""
    from .hurd.generation import GENERATIONS, of_dde_tree
    trees = cached_dde_trees()
    for t in trees:
        if t.root.parent.name == choice:
            return t
    if choice in GENERATIONS:
        for t in trees:
            if of_dde_tree(t.root).name == choice:
                return t
        raise PorterError(f"no DDE tree of the {choice} generation in porter's cache; "
                          "run `porter fetch --dde --from PATH` with one")
    path = Path(choice)
    if path.is_dir():
        tree = open_dde_tree(path)
        if not (tree.obj_base / "include" / "linux-headers").is_dir():
            layout_includes(tree)
        return tree
    known = ", ".join(t.root.parent.name for t in trees) or "none"
    raise PorterError(f"--dde {choice}: not a cached DDE tree (cached: {known}), a generation "
                      f"({', '.join(GENERATIONS)}) or a directory")


def dde_of_tree(tree: Path) -> DdeTree:
    """The DDE tree an emitted tree was ported against (its porting.json), else the current one."""
    from .tree import tree_dde_id
    try:
        dde_id = tree_dde_id(tree)
    except PorterError:
        return require_dde()
    if dde_id is None:
        return require_dde()
    for t in cached_dde_trees():
        if t.root.parent.name == dde_id:
            return t
    raise PorterError(f"{tree} was ported against the DDE tree {dde_id}, which porter's cache no longer has: "
                      "fetch it again (`porter fetch --dde --from PATH`) or re-run `porter port`")


def require_dde() -> DdeTree:
    tree = current_dde()
    if tree is None:
        raise PorterError("no DDE tree: run `porter fetch --dde` (or `--dde --from PATH`), "
                          "or set PORTER_DDE_TREE")
    return tree
