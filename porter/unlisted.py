"""Linux trees whose release the manifest does not list (a stable point release, a
distribution kernel, a tree with local patches): their version comes from the tree's
Makefile, every file taken in is hashed at fetch time, and the cache marks them as
not in the manifest, so ports of them say so."""

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Callable
from pathlib import Path

from . import PorterError
from .cache import linux_dir
from .manifest import Manifest, Release

UNLISTED_NAME = "unlisted.json"       # beside origin.json in the release's cache directory
_MAKEFILE_VAR = re.compile(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)[ \t]*=[ \t]*(\S*)[ \t]*$", re.M)

Reader = Callable[[str], bytes | None]


def makefile_version(text: str) -> str | None:
    """VERSION.PATCHLEVEL[.SUBLEVEL]EXTRAVERSION from a Linux top-level Makefile, as
    `make kernelversion` prints it; None when it does not set VERSION and PATCHLEVEL."""
    values = {}
    for name, value in _MAKEFILE_VAR.findall(text):
        values.setdefault(name, value)
    if not (values.get("VERSION", "").isdigit() and values.get("PATCHLEVEL", "").isdigit()):
        return None
    version = f"{values['VERSION']}.{values['PATCHLEVEL']}"
    if values.get("SUBLEVEL"):
        version += f".{values['SUBLEVEL']}"
    return version + values.get("EXTRAVERSION", "")


def _tree_reader(source: Path) -> tuple[Reader, str]:
    def read(path):
        p = source / path
        return p.read_bytes() if p.is_file() else None
    return read, f"tree {source.resolve()}"


def _git_reader(gitdir: Path, rev: str | None) -> tuple[Reader, str]:
    from .fetch import _git
    ref = rev or "HEAD"
    r = _git(gitdir, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
    if r.returncode:
        raise PorterError(f"{gitdir}: no commit {ref}; give --rev BRANCH|COMMIT of the Linux tree to take")
    commit = r.stdout.decode().strip()

    def read(path):
        got = _git(gitdir, "show", f"{commit}:{path}", check=False)
        return got.stdout if got.returncode == 0 else None
    return read, f"git {gitdir} at {ref} ({commit[:12]})"


def _tarball_reader(source: Path) -> tuple[Reader, str]:
    try:
        tar = tarfile.open(fileobj=io.BytesIO(source.read_bytes()), mode="r:*")
    except tarfile.TarError:
        raise PorterError(f"{source}: not a readable tarball (gzip, bzip2, xz or plain tar); give a Linux "
                          "tree, a tarball of one or a git directory") from None
    members = {}
    for m in tar.getmembers():
        parts = m.name.split("/", 1)       # linux-2.6.32.27/drivers/... -> drivers/...
        if m.isfile() and len(parts) == 2:
            members.setdefault(parts[1], m)

    def read(path):
        m = members.get(path)
        return tar.extractfile(m).read() if m else None
    return read, f"tarball {source.resolve()}"


def source_reader(source: Path, rev: str | None = None) -> tuple[Reader, str]:
    """read(linux path) -> bytes | None over a tree, a git directory or a tarball, and its description."""
    from .fetch import _git_dir_of
    if not source.exists():
        raise PorterError(f"--from {source}: no such file or directory")
    if source.is_dir():
        gitdir = _git_dir_of(source)
        return _git_reader(gitdir, rev) if gitdir is not None else _tree_reader(source)
    return _tarball_reader(source)


def fetch_unlisted(manifest: Manifest, source: Path, expect_version: str | None = None,
                   rev: str | None = None):
    """Take in a Linux tree the manifest may not list. A tree that holds a listed release
    exactly is that release (verified as always); any other is cached under the version its
    Makefile names (+local.<hash> when that names a listed release whose files differ)."""
    from .fetch import FetchedLinux, _install_linux, _verify, sha256
    source = Path(source)
    read, origin = source_reader(source, rev)
    makefile = read("Makefile")
    version = makefile_version(makefile.decode("utf-8", "replace")) if makefile is not None else None
    if version is None:
        raise PorterError(f"{source}: not a Linux tree: "
                          + ("no top-level Makefile" if makefile is None else
                             "its top-level Makefile sets no VERSION and PATCHLEVEL")
                          + f" (looked for {source}/Makefile); give a Linux source tree, a tarball of one "
                            "or a git directory")
    if expect_version and expect_version != version:
        raise PorterError(f"{source}: its Makefile says Linux {version}, not {expect_version}; "
                          f"drop --version to take it in as {version}")
    if version in manifest.releases:
        release = manifest.releases[version]
        try:
            return _install_linux(release, _verify(release, read), origin)
        except PorterError:
            pass                                # patched: not the listed release

    files, complete, missing = {}, [], {}
    for bundle in manifest.bundles.values():
        absent = [p for p in bundle.sources if read(p) is None]
        if absent:
            missing[bundle.name] = absent
            continue
        complete.append(bundle.name)
        for p in (*bundle.sources, *bundle.headers):
            data = read(p)
            if data is not None:
                files[p] = data
    if not complete:
        raise PorterError(f"{source}: Linux {version} holds no driver bundle porter ports; missing: "
                          + "; ".join(f"{b}: {', '.join(f'{source}/{p}' for p in ps)}" for b, ps in missing.items()))
    hashes = {p: sha256(d) for p, d in sorted(files.items())}
    key = version
    if version in manifest.releases:
        key = f"{version}+local.{hashlib.sha256(json.dumps(hashes).encode()).hexdigest()[:8]}"
    got = _install_linux(Release(key, "", hashes, listed=False, origin=origin), files, origin)
    (got.path / UNLISTED_NAME).write_text(json.dumps(
        {"version": key, "makefile_version": version, "origin": origin, "bundles": complete,
         "missing": missing, "files": hashes}, indent=1) + "\n")
    return FetchedLinux(key, got.path, origin, len(files), listed=False, makefile_version=version,
                        bundles=tuple(complete))


def cached_unlisted_release(version: str) -> Release | None:
    """An unlisted release porter fetch --from put in the cache, with the hashes it recorded."""
    meta = linux_dir(version) / UNLISTED_NAME
    if not meta.is_file():
        return None
    try:
        data = json.loads(meta.read_text())
        return Release(version, "", dict(data["files"]), listed=False, origin=data.get("origin", ""))
    except (ValueError, KeyError):
        raise PorterError(f"{meta}: unreadable; run `porter fetch --from TREE` again") from None
