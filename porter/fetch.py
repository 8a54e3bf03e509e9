"""Fetch stage: bring verified Linux files and a DDE tree into porter's cache."""

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import PorterError
from .cache import dde_root, linux_dir
from .dde import (DDE_FILES_NAME, DdeTree, describe_not_dde, is_dde_tree, layout_includes, open_dde_tree,
                  write_dde_manifest)
from .manifest import Manifest, Release

DDE_GIT_URL = "https://git.savannah.gnu.org/git/hurd/incubator.git"
DDE_BRANCH = "dde"


@dataclass(frozen=True)
class FetchedLinux:
    version: str
    path: Path
    origin: str
    files: int
    listed: bool = True              # False: not a release the manifest lists (porter.unlisted)
    makefile_version: str = ""
    bundles: tuple[str, ...] = ()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verify(release: Release, read) -> dict[str, bytes]:
    """Read every file of the release through read(path) -> bytes|None and check its hash."""
    got, missing, bad = {}, [], []
    for path, expected in sorted(release.files.items()):
        data = read(path)
        if data is None:
            missing.append(path)
            continue
        actual = sha256(data)
        if actual != expected:
            bad.append(f"{path}: expected sha256 {expected}, got {actual}")
        got[path] = data
    if missing or bad:
        parts = []
        if missing:
            parts.append(f"{len(missing)} of its {len(release.files)} files missing ({_some(missing)})")
        if bad:
            parts.append(f"{len(bad)} with another SHA-256 ({_some(bad)})")
        raise PorterError(f"Linux {release.version}: the source does not hold this release: "
                          f"{'; '.join(parts)}; give a tree, tarball or git directory of Linux {release.version}")
    return got


def _some(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f", and {len(items) - n} more" if len(items) > n else "")


def _install_linux(release: Release, files: dict[str, bytes], origin: str) -> FetchedLinux:
    dest = linux_dir(release.version)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{release.version}-", dir=dest.parent))
    try:
        for path, data in files.items():
            (tmp / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp / path).write_bytes(data)
        (tmp / "origin.json").write_text(json.dumps({"version": release.version, "origin": origin}, indent=1) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FetchedLinux(release.version, dest, origin, len(files))


def _git(gitdir: Path, *args: str, check=True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", f"--git-dir={gitdir}", *args], capture_output=True, check=check)


def _git_dir_of(path: Path) -> Path | None:
    """The git directory at path (bare, or a checkout's .git), else None."""
    for cand in (path / ".git", path):
        if (cand / "HEAD").is_file() and (cand / "objects").is_dir():
            return cand
    return None


def _read_from_git(release: Release, gitdir: Path) -> tuple[dict[str, bytes], str]:
    # The release commit first; then the tag; then HEAD, for plain imports
    # of a release (the hashes decide whether it really is that release).
    errors = []
    for ref in (release.commit, f"v{release.version}", "HEAD"):
        if _git(gitdir, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False).returncode:
            continue

        def read(path, ref=ref):
            r = _git(gitdir, "show", f"{ref}:{path}", check=False)
            return r.stdout if r.returncode == 0 else None
        try:
            return _verify(release, read), f"git {gitdir} at {ref}"
        except PorterError as e:
            errors.append(f"at {ref}: {e}")
    raise PorterError(f"{gitdir}: no commit holds Linux {release.version} "
                      f"(tried {release.commit[:12]}, v{release.version}, HEAD)"
                      + ("\n" + "\n".join(errors) if errors else ""))


def _read_from_tarball(release: Release, data: bytes, name: str) -> dict[str, bytes]:
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except tarfile.TarError:
        raise PorterError(f"{name}: not a readable tarball (gzip, bzip2, xz or plain tar); give a Linux "
                          f"release tarball, a tree or a git directory") from None
    members = {}
    for m in tar.getmembers():
        if m.isfile():
            # linux-2.6.32/drivers/... -> drivers/...
            parts = m.name.split("/", 1)
            if len(parts) == 2 and parts[1] in release.files:
                members[parts[1]] = m

    def read(path):
        m = members.get(path)
        return tar.extractfile(m).read() if m else None
    return _verify(release, read)


def fetch_linux(manifest: Manifest, version: str, source: Path | None = None) -> FetchedLinux:
    release = manifest.release(version)
    if source is None:
        return _fetch_linux_network(manifest, release)
    source = Path(source)
    if not source.exists():
        raise PorterError(f"--from {source}: no such file or directory")
    gitdir = _git_dir_of(source) if source.is_dir() else None
    if gitdir is not None:
        files, origin = _read_from_git(release, gitdir)
        return _install_linux(release, files, origin)
    if source.is_dir():
        def read(path):
            p = source / path
            return p.read_bytes() if p.is_file() else None
        return _install_linux(release, _verify(release, read), f"tree {source.resolve()}")
    files = _read_from_tarball(release, source.read_bytes(), str(source))
    return _install_linux(release, files, f"tarball {source.resolve()}")


def _fetch_linux_network(manifest: Manifest, release: Release) -> FetchedLinux:
    errors = []
    for template in manifest.tarball_urls:
        url = template.format(version=release.version, minor=release.version.rsplit(".", 1)[-1])
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                data = resp.read()
        except (urllib.error.URLError, OSError) as e:
            errors.append(f"{url}: {getattr(e, 'reason', e)}")
            continue
        return _install_linux(release, _read_from_tarball(release, data, url), url)
    raise PorterError(
        f"cannot download Linux {release.version} (no network?):\n  " + "\n  ".join(errors)
        + f"\nUse `porter fetch --version {release.version} --from PATH` with a Linux tree, "
          "a release tarball, or a git directory holding the release commit")


# ---------------------------------------------------------------- the DDE

def _dde_id_from_dir(root: Path) -> str:
    """A content id for a plain directory: hash of its file names and bytes."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and ".git" not in p.parts:
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return "dir-" + h.hexdigest()[:16]


def fetch_dde(source: Path | None = None, rev: str | None = None) -> DdeTree:
    """Import a DDE tree into the cache and make it the current one."""
    dest_root = dde_root()
    dest_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_root, prefix=".import-") as tmpd:
        tmp = Path(tmpd)
        if source is None:
            clone = tmp / "clone.git"
            r = subprocess.run(["git", "clone", "--bare", "--single-branch", "--branch", rev or DDE_BRANCH,
                                DDE_GIT_URL, str(clone)], capture_output=True, text=True)
            if r.returncode:
                raise PorterError(f"cannot clone the DDE from {DDE_GIT_URL} (no network?): "
                                  f"{r.stderr.strip()}\nUse `porter fetch --dde --from PATH` with a "
                                  "git directory or checkout of the Hurd incubator's 'dde' branch, "
                                  "or a Debian hurd source tree")
            source, gitdir = clone, clone
        else:
            source = Path(source)
            if not source.exists():
                raise PorterError(f"--from {source}: no such file or directory")
            gitdir = _git_dir_of(source)
        src = tmp / "src"
        if gitdir is not None and (rev is not None or is_dde_tree(source) is None):
            ref = rev or _pick_dde_ref(gitdir)
            commit = _git(gitdir, "rev-parse", f"{ref}^{{commit}}").stdout.decode().strip()
            src.mkdir()
            arch = subprocess.run(["git", f"--git-dir={gitdir}", "archive", commit],
                                  capture_output=True, check=True).stdout
            tarfile.open(fileobj=io.BytesIO(arch)).extractall(src, filter="tar")
            origin = {"kind": "git", "path": str(source), "ref": ref, "commit": commit}
            ident = commit[:12]
        else:
            shutil.copytree(source, src, symlinks=True, ignore=shutil.ignore_patterns(".git"))
            ident = _dde_id_from_dir(src)
            origin = {"kind": "directory", "path": str(Path(source).resolve()), "id": ident}
        if is_dde_tree(src) is None:
            raise PorterError(describe_not_dde(Path(source)) + (
                f" (looked at {origin.get('ref')} = {origin.get('commit', '')[:12]})"
                if origin["kind"] == "git" else ""))
        (tmp / "origin.json").write_text(json.dumps(origin, indent=1) + "\n")
        write_dde_manifest(src, tmp / DDE_FILES_NAME)
        tree = open_dde_tree(src, origin)
        layout_includes(tree)
        final = dest_root / ident
        if final.exists():
            shutil.rmtree(final)
        final.mkdir()
        src.rename(final / "src")
        (tmp / "origin.json").rename(final / "origin.json")
        (tmp / DDE_FILES_NAME).rename(final / DDE_FILES_NAME)
    (dest_root / "CURRENT").write_text(ident + "\n")
    return open_dde_tree(final / "src", origin)


def _pick_dde_ref(gitdir: Path) -> str:
    """The 'dde' branch if the repository has one (incubator), else HEAD."""
    for ref in (DDE_BRANCH, f"origin/{DDE_BRANCH}", "HEAD"):
        if _git(gitdir, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False).returncode == 0:
            return ref
    raise PorterError(f"{gitdir}: a git directory with no commits")
