"""`porter fetch --hurd`: GNU Mach, MIG and the Hurd at a source set's commits, and
Debian's glibc, gcc and libpciaccess source packages, into porter's cache.

Each component lands in ``cache/hurd/src/<name>-<id>/tree`` with an
``origin.json`` that records where it came from (git directory and commit, or a
plain tree and a hash of its contents; for Debian sources the version and the
SHA-256 of every file used, checked against the .dsc).  Nothing is built here.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import PorterError
from ..cache import cache_root
from . import generation as gen
from .sets import COMPONENTS, DebianSource, Pin, SourceSet, load_sets


def hurd_root() -> Path:
    return cache_root() / "hurd"


def src_root() -> Path:
    return hurd_root() / "src"


@dataclass(frozen=True)
class Component:
    name: str            # gnumach, mig, hurd, glibc, gcc, pciaccess
    tree: Path           # the source tree to build from
    origin: dict

    @property
    def ident(self) -> str:
        """What identifies this source: a commit, a content hash, or a Debian version."""
        o = self.origin
        return o.get("commit") or o.get("debian_version") or o["id"]


@dataclass(frozen=True)
class SetSources:
    """The fetched sources of one source set, ready for the sysroot build."""
    set: SourceSet
    components: dict[str, Component]

    @property
    def generation(self) -> str:
        return self.set.generation

    def __getitem__(self, name: str) -> Component:
        return self.components[name]


# ---------------------------------------------------------------- recognising what --from gives

def _git_dir(path: Path) -> Path | None:
    for cand in (path / ".git", path):
        if (cand / "HEAD").is_file() and (cand / "objects").is_dir():
            return cand
    return None


def _git(gitdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", f"--git-dir={gitdir}", *args], capture_output=True, check=check)


def _has_commit(gitdir: Path, commit: str) -> bool:
    return _git(gitdir, "cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode == 0


# a component is recognised by files only it has (in a tree, or at HEAD of a git directory)
MARKERS = {
    "gnumach": ("kern/sched_prim.c", "include/mach/mach.defs"),
    "mig": ("migcom.c", "parser.y"),
    "hurd": ("libtrivfs/trivfs.h", "hurd/hurd_types.defs"),
}


def _component_of(path: Path) -> str | None:
    gitdir = _git_dir(path)
    for name, files in MARKERS.items():
        if gitdir is not None:
            if all(_git(gitdir, "cat-file", "-e", f"HEAD:{f}", check=False).returncode == 0 for f in files):
                return name
        elif all((path / f).is_file() for f in files):
            return name
    return None


def _candidates(paths: list[Path], depth: int = 2) -> tuple[dict[str, list[Path]], list[Path]]:
    """Components found at or below each path (depth levels), and directories holding .dsc files."""
    found: dict[str, list[Path]] = {}
    dsc_dirs: list[Path] = []

    def visit(p: Path, level: int) -> None:
        if not p.is_dir():
            return
        name = _component_of(p)
        if name:
            found.setdefault(name, []).append(p)
            return
        if any(p.glob("*.dsc")):
            dsc_dirs.append(p)
        if level < depth and _git_dir(p) is None:
            for child in sorted(p.iterdir()):
                if child.is_dir() and not child.name.startswith("."):
                    visit(child, level + 1)

    for p in paths:
        if not p.exists():
            raise PorterError(f"--from {p}: no such file or directory")
        visit(p.resolve(), 0)
    return found, dsc_dirs


# ---------------------------------------------------------------- gnumach, mig, hurd

def _content_id(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and ".git" not in p.parts:
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def _install(dest: Path, fill, origin: dict) -> Component:
    """Write a component atomically: fill(tmp_tree) then rename into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        fill(tmp / "tree")
        (tmp / "origin.json").write_text(json.dumps(origin, indent=1, sort_keys=True) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Component(origin["component"], dest / "tree", origin)


def _import_git(name: str, gitdir: Path, pin: Pin) -> Component:
    dest = src_root() / f"{name}-{pin.commit[:12]}"
    if (dest / "origin.json").is_file():
        return Component(name, dest / "tree", json.loads((dest / "origin.json").read_text()))

    def fill(tree: Path) -> None:
        tree.mkdir(parents=True)
        arch = _git(gitdir, "archive", pin.commit).stdout
        tarfile.open(fileobj=io.BytesIO(arch)).extractall(tree, filter="tar")
    return _install(dest, fill, {"component": name, "kind": "git", "path": str(gitdir),
                                 "commit": pin.commit, "ref": pin.ref, "date": pin.date})


def _import_tree(name: str, tree: Path) -> Component:
    ident = _content_id(tree)
    dest = src_root() / f"{name}-tree-{ident[:12]}"
    if (dest / "origin.json").is_file():
        return Component(name, dest / "tree", json.loads((dest / "origin.json").read_text()))
    return _install(dest, lambda t: shutil.copytree(tree, t, symlinks=True,
                                                     ignore=shutil.ignore_patterns(".git")),
                    {"component": name, "kind": "tree", "path": str(tree), "id": ident})


def _clone(name: str, url: str, into: Path) -> Path:
    r = subprocess.run(["git", "clone", "--bare", "--quiet", url, str(into)], capture_output=True, text=True)
    if r.returncode:
        raise PorterError(f"cannot clone {name} from {url} (no network?): {r.stderr.strip()}\n"
                          f"Use `porter fetch --hurd --from PATH` with git directories or trees of "
                          f"{', '.join(COMPONENTS)}")
    return into


def _fetch_component(name: str, candidates: list[Path], pin: Pin, url: str, tmp: Path) -> Component:
    """The component at the pinned commit from the first git directory that has it; a plain
    tree as it is; else a clone of the default URL."""
    trees = []
    for path in candidates:
        gitdir = _git_dir(path)
        if gitdir is None:
            trees.append(path)
        elif _has_commit(gitdir, pin.commit):
            return _import_git(name, gitdir, pin)
    if trees:
        return _import_tree(name, trees[0])
    if candidates:
        raise PorterError(f"{name}: none of {', '.join(map(str, candidates))} has commit {pin.commit} "
                          f"({pin.ref}, {pin.date}); fetch that history, or give a tree of it")
    gitdir = _clone(name, url, tmp / f"{name}.git")
    if not _has_commit(gitdir, pin.commit):
        raise PorterError(f"{name}: {url} has no commit {pin.commit} ({pin.ref})")
    return _import_git(name, gitdir, pin)


# ---------------------------------------------------------------- Debian source packages

def _dpkg_newer_first(versions: list[str]) -> list[str]:
    import functools

    def cmp(a: str, b: str) -> int:
        if a == b:
            return 0
        newer = subprocess.run(["dpkg", "--compare-versions", a, "gt", b]).returncode == 0
        return -1 if newer else 1
    return sorted(set(versions), key=functools.cmp_to_key(cmp))


def _upstream(debian_version: str) -> str:
    v = debian_version.split(":", 1)[-1]
    return v.rsplit("-", 1)[0] if "-" in v else v


def _dsc_files(dsc: Path) -> dict[str, str]:
    """name -> sha256, from the .dsc's Checksums-Sha256 field."""
    files, inside = {}, False
    for line in dsc.read_text(errors="replace").splitlines():
        if line.startswith("Checksums-Sha256:"):
            inside = True
            continue
        if inside:
            if not line.startswith(" "):
                break
            parts = line.split()
            if len(parts) == 3:
                files[parts[2]] = parts[0]
    return files


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _find_dsc(src: DebianSource, dsc_dirs: list[Path]) -> Path | None:
    hits = []
    for d in dsc_dirs:
        for dsc in d.glob(f"{src.package}_*.dsc"):
            version = dsc.stem.split("_", 1)[1]
            if _upstream(version) == src.version or _upstream(version).startswith(src.version + "+"):
                hits.append((version, dsc))
    if not hits:
        return None
    newest = _dpkg_newer_first([v for v, _ in hits])[0]
    return next(d for v, d in hits if v == newest)


def _apt_download(src: DebianSource, into: Path) -> Path:
    """Download the newest Debian revision of src that the archive serves whole; its .dsc."""
    r = subprocess.run(["apt-cache", "showsrc", src.package], capture_output=True, text=True)
    versions = [line.split(":", 1)[1].strip() for line in r.stdout.splitlines() if line.startswith("Version:")]
    versions = [v for v in versions if _upstream(v) == src.version or _upstream(v).startswith(src.version + "+")]
    if not versions:
        raise PorterError(
            f"Debian source package {src.package} {src.version} is not known to apt: add a deb-src line "
            f"(e.g. `Types: deb-src` beside your `deb` entries in /etc/apt/sources.list.d/) and run "
            f"`apt-get update`, or give `porter fetch --hurd --from DIR` with the package's .dsc and files")
    errors = []
    for version in _dpkg_newer_first(versions):
        d = into / version
        d.mkdir(parents=True)
        r = subprocess.run(["apt-get", "source", "--download-only", "-qq", f"{src.package}={version}"],
                           cwd=d, capture_output=True, text=True)
        dsc = next(d.glob("*.dsc"), None)
        if r.returncode == 0 and dsc:
            return dsc
        errors.append(f"{version}: {(r.stderr.strip().splitlines() or ['no .dsc'])[-1]}")
    raise PorterError(f"cannot download Debian source {src.package} {src.version}:\n  " + "\n  ".join(errors))


def _fetch_debian(name: str, src: DebianSource, dsc_dirs: list[Path], tmp: Path) -> Component:
    dsc = _find_dsc(src, dsc_dirs) or _apt_download(src, tmp / "apt" / src.package)
    version = dsc.stem.split("_", 1)[1]
    dest = src_root() / f"{name}-{version}"
    if (dest / "origin.json").is_file():
        return Component(name, dest / "tree", json.loads((dest / "origin.json").read_text()))
    listed = _dsc_files(dsc)
    used = {}
    for fname, expected in listed.items():
        p = dsc.parent / fname
        if not p.is_file():
            continue
        actual = _sha256(p)
        if actual != expected:
            raise PorterError(f"{p}: sha256 {actual} is not the {expected} that {dsc.name} lists; "
                              "download it again")
        used[fname] = actual
    orig = next((f for f in used if ".orig.tar." in f and not f.endswith(".asc")), None)
    if orig is None:
        raise PorterError(f"{dsc}: its orig tarball is not beside it ({', '.join(listed)})")

    def fill(tree: Path) -> None:
        work = tree.parent / "unpack"
        if name == "glibc":
            # the Hurd port is in Debian's patches: dpkg-source applies them (and checks the .dsc)
            if not any(".debian.tar." in f for f in used):
                raise PorterError(f"{dsc}: Debian's patches ({src.package}_{version}.debian.tar.*) are "
                                  "missing; glibc's Hurd port is in them")
            r = subprocess.run(["dpkg-source", "--no-check", "-x", str(dsc), str(work)],
                               capture_output=True, text=True)
            if r.returncode:
                raise PorterError(f"dpkg-source -x {dsc} failed: {r.stderr.strip()[-2000:]}")
            work.rename(tree)
            return
        work.mkdir()
        with tarfile.open(dsc.parent / orig) as t:
            t.extractall(work, filter="tar")
        top = next(work.iterdir())
        inner = sorted(top.glob(f"{name}-{src.version}*.tar.*"))   # gcc's orig holds gcc-X-dfsg.tar.xz
        if inner:
            with tarfile.open(inner[0]) as t:
                t.extractall(work / "inner", filter="tar")
            top = next((work / "inner").iterdir())
        top.rename(tree)
        shutil.rmtree(work)
    return _install(dest, fill, {"component": name, "kind": "debian", "package": src.package,
                                 "debian_version": version, "dsc": str(dsc), "files": used})


# ---------------------------------------------------------------- the whole set

def sets_path(generation: str) -> Path:
    return hurd_root() / "sets" / f"{generation}.json"


def fetch_set(source_set: SourceSet, from_paths: list[Path]) -> SetSources:
    """Fetch every component of one set and record the set in the cache."""
    urls = load_sets().urls
    found, dsc_dirs = _candidates([Path(p) for p in from_paths])
    src_root().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=src_root(), prefix=".fetch-") as tmpd:
        tmp = Path(tmpd)
        comps = {name: _fetch_component(name, found.get(name, []), source_set.pins[name], urls[name], tmp)
                 for name in COMPONENTS}
        for name, deb in (("glibc", source_set.glibc), ("gcc", source_set.gcc),
                          ("pciaccess", source_set.pciaccess)):
            comps[name] = _fetch_debian(name, deb, dsc_dirs, tmp)
    got = gen.of_hurd_tree(comps["hurd"].tree)
    if got.name != source_set.generation:
        raise PorterError(f"{comps['hurd'].origin.get('path')}: this Hurd is of the {got.name} generation "
                          f"({got.evidence}), not {source_set.generation}; give the set's commit")
    record = {"generation": source_set.generation,
              "components": {n: str(c.tree.parent) for n, c in comps.items()}}
    sets_path(source_set.generation).parent.mkdir(parents=True, exist_ok=True)
    tmp_record = sets_path(source_set.generation).with_suffix(".tmp")
    tmp_record.write_text(json.dumps(record, indent=1) + "\n")
    tmp_record.replace(sets_path(source_set.generation))
    return SetSources(source_set, comps)


def cached_set(generation: str) -> SetSources | None:
    """The sources of a generation's set if `porter fetch --hurd` brought them."""
    try:
        record = json.loads(sets_path(generation).read_text())
    except (OSError, ValueError):
        return None
    comps = {}
    for name, d in record["components"].items():
        origin_file = Path(d) / "origin.json"
        if not origin_file.is_file():
            return None
        comps[name] = Component(name, Path(d) / "tree", json.loads(origin_file.read_text()))
    return SetSources(load_sets().for_generation(generation), comps)


def describe(s: SetSources) -> list[str]:
    lines = []
    for name, c in s.components.items():
        o = c.origin
        if o["kind"] == "git":
            lines.append(f"{name:9} {o['commit'][:12]} ({o['ref']}, {o['date']}) from git {o['path']}")
        elif o["kind"] == "tree":
            lines.append(f"{name:9} tree {o['path']} (contents {o['id'][:12]}; not the set's commit)")
        else:
            lines.append(f"{name:9} Debian {o['package']} {o['debian_version']} ({len(o['files'])} files "
                         f"checked against the .dsc)")
    return lines
