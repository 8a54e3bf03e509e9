"""The upstream manifest: releases, their files with SHA-256, and driver bundles."""

import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import DATA_ROOT, PorterError

MANIFEST_PATH = DATA_ROOT / "linux-2.6-drivers" / "manifest.toml"


@dataclass(frozen=True)
class Release:
    version: str
    commit: str                      # the mainline release commit (git --from)
    files: dict[str, str]            # Linux path -> sha256
    listed: bool = True              # False: a tree porter fetch --from took in without the manifest
    origin: str = ""                 # unlisted releases: where the files came from


@dataclass(frozen=True)
class Bundle:
    name: str
    description: str
    sources: tuple[str, ...]
    headers: tuple[str, ...]
    glue: str = ""           # the templates/ folder of its main.c and Hurd glue; default: its name
    # the DDE libraries it links besides libdde_linux26.o.a (libdde_linux26_<name>.a)
    dde_libraries: tuple[str, ...] = ("net",)
    # porter's own headers (dde-shims/include) its glue calls, emitted with their sources
    shims: tuple[str, ...] = ()
    # headers of kernel APIs that are newer in the release than in the DDE (hw_random.h):
    # emitted ahead of the DDE's like the others, but what they declare is the kernel's, not the bundle's
    kernel_headers: tuple[str, ...] = ()

    @property
    def glue_templates(self) -> str:
        return self.glue or self.name

    def files_in(self, release: Release) -> tuple[list[str], list[str]]:
        """(sources, headers) of this bundle that the release has."""
        missing = [p for p in self.sources if p not in release.files]
        if missing:
            raise PorterError(
                f"bundle {self.name}: release {release.version} has no {', '.join(missing)} "
                f"in {MANIFEST_PATH}; add the file's hash there or choose another version")
        return list(self.sources), [h for h in (*self.headers, *self.kernel_headers) if h in release.files]


@dataclass(frozen=True)
class Manifest:
    path: Path
    tarball_urls: tuple[str, ...]
    releases: dict[str, Release]
    bundles: dict[str, Bundle]

    def release(self, version: str) -> Release:
        if version in self.releases:
            return self.releases[version]
        from .unlisted import cached_unlisted_release
        unlisted = cached_unlisted_release(version)
        if unlisted is None:
            raise PorterError(
                f"unknown Linux version {version!r}: {self.path} knows "
                f"{', '.join(self.releases)}; a tree of another release: "
                f"`porter fetch --from TREE|TARBALL|GITDIR`") from None
        return unlisted

    def bundle(self, name: str) -> Bundle:
        try:
            return self.bundles[name]
        except KeyError:
            raise PorterError(
                f"unknown driver bundle {name!r}: {self.path} has {', '.join(self.bundles)}") from None


def load_manifest(path: Path = MANIFEST_PATH) -> Manifest:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise PorterError(f"{path}: manifest not found; porter's checkout is incomplete") from None
    except tomllib.TOMLDecodeError as e:
        raise PorterError(f"{path}: not valid TOML: {e}") from None
    try:
        releases = {
            v: Release(v, r["commit"], dict(r["files"])) for v, r in data["release"].items()}
        bundles = {
            n: Bundle(n, b.get("description", ""), tuple(b["sources"]), tuple(b.get("headers", ())),
                      b.get("glue", ""), tuple(b.get("dde_libraries", ("net",))), tuple(b.get("shims", ())),
                      tuple(b.get("kernel_headers", ())))
            for n, b in data["bundle"].items()}
        urls = tuple(data["source"]["tarball_urls"])
    except KeyError as e:
        raise PorterError(f"{path}: missing key {e}") from None
    return Manifest(path, urls, releases, bundles)
