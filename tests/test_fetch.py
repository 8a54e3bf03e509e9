"""fetch: Linux files verified against the manifest from a tree, a tarball or a
git directory; the DDE from a directory; clear errors for bad input."""

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from porter import PorterError
from porter.dde import is_dde_tree
from porter.fetch import fetch_dde, fetch_linux
from porter.manifest import load_manifest

N_2_6_32 = len(load_manifest().release("2.6.32").files)     # files the manifest lists for 2.6.32


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def copy_release(src: Path, dest: Path) -> Path:
    for p in src.rglob("*"):
        if p.is_file() and p.name != "origin.json":
            (dest / p.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, dest / p.relative_to(src))
    return dest


def test_manifest_knows_every_release():
    m = load_manifest()
    assert list(m.releases) == [f"2.6.{n}" for n in range(28, 40)]
    srcs, hdrs = m.bundle("virtio-net").files_in(m.release("2.6.32"))
    assert "drivers/net/virtio_net.c" in srcs and "include/linux/virtio_ids.h" in hdrs
    _, hdrs31 = m.bundle("virtio-net").files_in(m.release("2.6.31"))
    assert "include/linux/virtio_ids.h" not in hdrs31


def test_unknown_version_and_bundle():
    m = load_manifest()
    with pytest.raises(PorterError, match=r"unknown Linux version '2.6.99'.*2.6.28"):
        m.release("2.6.99")
    with pytest.raises(PorterError, match="unknown driver bundle 'virtio-nope'"):
        m.bundle("virtio-nope")


def test_missing_manifest(tmp_path):
    with pytest.raises(PorterError, match="manifest not found"):
        load_manifest(tmp_path / "manifest.toml")


def test_from_tree(cache, linux_2_6_32, tmp_path):
    tree = copy_release(linux_2_6_32, tmp_path / "linux")
    got = fetch_linux(load_manifest(), "2.6.32", tree)
    assert got.files == N_2_6_32 and (cache / "linux/2.6.32/drivers/net/virtio_net.c").is_file()


def test_hash_mismatch_names_expected_and_actual(cache, linux_2_6_32, tmp_path):
    tree = copy_release(linux_2_6_32, tmp_path / "linux")
    with open(tree / "drivers/virtio/virtio_ring.c", "a") as f:
        f.write("/* local change */\n")
    with pytest.raises(PorterError, match=r"1 with another SHA-256 \(drivers/virtio/virtio_ring.c: expected sha256 "
                                          r"14d56ca8\w+, got [0-9a-f]{64}\)"):
        fetch_linux(load_manifest(), "2.6.32", tree)
    assert not (cache / "linux/2.6.32").exists()      # nothing half-imported


def test_missing_file(cache, linux_2_6_32, tmp_path):
    tree = copy_release(linux_2_6_32, tmp_path / "linux")
    (tree / "include/linux/virtio_pci.h").unlink()
    with pytest.raises(PorterError, match=rf"1 of its {N_2_6_32} files missing \(include/linux/virtio_pci.h\)"):
        fetch_linux(load_manifest(), "2.6.32", tree)


def test_from_tarball(cache, linux_2_6_32, tmp_path):
    tar_path = tmp_path / "linux-2.6.32.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for p in sorted(linux_2_6_32.rglob("*")):
            if p.is_file() and p.name != "origin.json":
                tar.add(p, arcname=f"linux-2.6.32/{p.relative_to(linux_2_6_32)}")
    got = fetch_linux(load_manifest(), "2.6.32", tar_path)
    assert got.origin.startswith("tarball") and got.files == N_2_6_32


def test_from_bare_git_directory(cache, linux_2_6_32, tmp_path):
    work = copy_release(linux_2_6_32, tmp_path / "work")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(work)]
    subprocess.run(git[:5] + ["init", "-q", str(work)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "import"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(tmp_path / "bare.git")], check=True)
    got = fetch_linux(load_manifest(), "2.6.32", tmp_path / "bare.git")
    assert "at HEAD" in got.origin
    with pytest.raises(PorterError, match="no commit holds Linux 2.6.33"):
        fetch_linux(load_manifest(), "2.6.33", tmp_path / "bare.git")


def test_not_a_tarball(cache, tmp_path):
    junk = tmp_path / "linux.tar.xz"
    junk.write_bytes(b"this is not a tarball")
    with pytest.raises(PorterError, match="not a readable tarball"):
        fetch_linux(load_manifest(), "2.6.32", junk)


def test_no_network_suggests_from(cache, monkeypatch):
    m = load_manifest()
    # a closed local port: the download really fails, as it does offline
    object.__setattr__(m, "tarball_urls", ("http://127.0.0.1:9/linux-{version}.tar.xz",))
    with pytest.raises(PorterError, match=r"cannot download Linux 2.6.32[\s\S]*--from PATH"):
        fetch_linux(m, "2.6.32")


def test_dde_from_directory(cache, dde_tree):
    tree = fetch_dde(dde_tree.root)
    assert is_dde_tree(tree.root) and tree.origin["kind"] == "directory"
    assert (tree.obj_base / "include/linux-headers/linux/netdevice.h").is_file()
    assert (tree.obj_base / "include/x86/asm/page.h").is_file()
    assert (cache / "dde/CURRENT").read_text().strip() == tree.root.parent.name


def test_dde_path_that_is_not_a_dde(cache, tmp_path):
    (tmp_path / "somewhere/libddekit").mkdir(parents=True)
    with pytest.raises(PorterError, match="is not a DDE tree: expected libdde-linux26/"):
        fetch_dde(tmp_path / "somewhere")
    assert not (cache / "dde/CURRENT").exists()
