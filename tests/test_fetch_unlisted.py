"""porter fetch --from for trees whose release the manifest does not list: the version
from the tree's Makefile, every file hashed and recorded, "not in manifest" in fetch's
output and in the porting report; a tree that is not Linux or lacks a bundle's files is
refused with the paths it looked for."""

import json
import subprocess
import sys
import tarfile

import pytest

from porter import PorterError
from porter.emit import render_tree
from porter.manifest import load_manifest
from porter.pipeline import load_inputs, scan_inputs
from porter.plan import plan_port
from porter.unlisted import fetch_unlisted, makefile_version

from test_fetch import cache, copy_release  # noqa: F401  (cache is a fixture)

PATCH_FROM = "static int napi_weight = 128;"
PATCH_TO = "static int napi_weight = 64;\t/* a local patch */"


def makefile(sublevel="32", extra="-porterpatch"):
    # the top of a Linux 2.6 Makefile: what `make kernelversion` reads
    return f"VERSION = 2\nPATCHLEVEL = 6\nSUBLEVEL = {sublevel}\nEXTRAVERSION = {extra}\nNAME = test\n"


def linux_tree(release_dir, dest, mk=None, patch=True):
    tree = copy_release(release_dir, dest)
    (tree / "Makefile").write_text(mk or makefile())
    if patch:
        net = tree / "drivers/net/virtio_net.c"
        text = net.read_text()
        assert PATCH_FROM in text
        net.write_text(text.replace(PATCH_FROM, PATCH_TO))
    return tree


@pytest.mark.parametrize("text,version", [
    (makefile(), "2.6.32-porterpatch"),
    (makefile("32", ".27"), "2.6.32.27"),
    (makefile("", "-rc1"), "2.6-rc1"),
    ("VERSION = 2\nPATCHLEVEL = 6\nSUBLEVEL = 39\nEXTRAVERSION =\n", "2.6.39"),
    ("# not Linux\nall:\n\ttrue\n", None),
])
def test_version_from_the_makefile(text, version):
    assert makefile_version(text) == version


def test_unlisted_tree_is_fetched_hashed_and_marked(cache, linux_2_6_32, tmp_path):
    tree = linux_tree(linux_2_6_32, tmp_path / "linux")
    got = fetch_unlisted(load_manifest(), tree)
    assert (got.version, got.listed, got.makefile_version) == ("2.6.32-porterpatch", False, "2.6.32-porterpatch")
    assert "virtio-net" in got.bundles
    meta = json.loads((cache / "linux/2.6.32-porterpatch/unlisted.json").read_text())
    net = (tree / "drivers/net/virtio_net.c").read_bytes()
    import hashlib
    assert meta["files"]["drivers/net/virtio_net.c"] == hashlib.sha256(net).hexdigest()
    assert len(meta["files"]) == got.files and meta["origin"].startswith("tree ")
    release = load_manifest().release("2.6.32-porterpatch")
    assert not release.listed and release.files == meta["files"]


def test_unlisted_tree_ports_through_the_same_rules_and_says_so(cache, linux_2_6_32, dde_tree, tmp_path):
    fetch_unlisted(load_manifest(), linux_tree(linux_2_6_32, tmp_path / "linux"))
    inputs = load_inputs("virtio-net", "2.6.32-porterpatch", dde=dde_tree)
    plan = plan_port(inputs, scan_inputs(inputs))
    assert plan.unmapped == []
    files, report = render_tree(plan)
    assert report["in_manifest"] is False and report["version"] == "2.6.32-porterpatch"
    assert "(**not in manifest**: taken in by `porter fetch --from` from tree " in files["PORTING.md"].decode()
    assert PATCH_TO.encode() in files["virtio_net.c"]
    # a listed release's report says nothing of the kind
    listed = load_inputs("virtio-net", "2.6.32", dde=dde_tree, linux_root=linux_2_6_32)
    assert render_tree(plan_port(listed, scan_inputs(listed)))[1]["in_manifest"] is True


def test_a_changed_file_after_fetch_is_caught(cache, linux_2_6_32, dde_tree, tmp_path):
    got = fetch_unlisted(load_manifest(), linux_tree(linux_2_6_32, tmp_path / "linux"))
    with open(got.path / "drivers/virtio/virtio.c", "a") as f:
        f.write("/* edited in the cache */\n")
    with pytest.raises(PorterError, match=r"virtio.c: changed since it was fetched .*recorded at fetch .*"
                                          r"porter fetch --from tree .*linux"):
        load_inputs("virtio-net", "2.6.32-porterpatch", dde=dde_tree)


def test_a_patched_listed_release_gets_a_local_version(cache, linux_2_6_32, tmp_path):
    tree = linux_tree(linux_2_6_32, tmp_path / "linux", makefile(extra=""))
    got = fetch_unlisted(load_manifest(), tree)
    assert got.makefile_version == "2.6.32" and not got.listed
    assert got.version.startswith("2.6.32+local.") and len(got.version) == len("2.6.32+local.") + 8
    assert not (cache / "linux/2.6.32").exists()      # the listed release is not overwritten


def test_an_unpatched_listed_release_is_that_release(cache, linux_2_6_32, tmp_path):
    tree = linux_tree(linux_2_6_32, tmp_path / "linux", makefile(extra=""), patch=False)
    got = fetch_unlisted(load_manifest(), tree)
    assert (got.version, got.listed) == ("2.6.32", True)
    assert not (cache / "linux/2.6.32/unlisted.json").exists()


def test_from_tarball_and_git(cache, linux_2_6_32, tmp_path):
    tree = linux_tree(linux_2_6_32, tmp_path / "linux", makefile("32", ".27"))
    tar_path = tmp_path / "linux-2.6.32.27.tar.xz"
    with tarfile.open(tar_path, "w:xz") as tar:
        tar.add(tree, arcname="linux-2.6.32.27")
    got = fetch_unlisted(load_manifest(), tar_path)
    assert got.version == "2.6.32.27" and got.origin.startswith("tarball ")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tree)]
    subprocess.run(["git", "init", "-q", str(tree)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "import"], check=True)
    got = fetch_unlisted(load_manifest(), tree)
    assert got.version == "2.6.32.27" and got.origin.startswith("git ") and "at HEAD" in got.origin


def test_not_linux_is_refused_with_the_path(cache, tmp_path):
    (tmp_path / "notlinux").mkdir()
    with pytest.raises(PorterError, match=rf"{tmp_path}/notlinux: not a Linux tree: no top-level Makefile "
                                          rf"\(looked for {tmp_path}/notlinux/Makefile\)"):
        fetch_unlisted(load_manifest(), tmp_path / "notlinux")
    (tmp_path / "notlinux/Makefile").write_text("all:\n\ttrue\n")
    with pytest.raises(PorterError, match="its top-level Makefile sets no VERSION and PATCHLEVEL"):
        fetch_unlisted(load_manifest(), tmp_path / "notlinux")
    assert not (cache / "linux").exists()


def test_missing_bundle_files_are_named(cache, linux_2_6_32, tmp_path):
    tree = linux_tree(linux_2_6_32, tmp_path / "linux")
    for bundle in load_manifest().bundles.values():    # every bundle loses its driver
        (tree / bundle.sources[-1]).unlink(missing_ok=True)
    with pytest.raises(PorterError, match=rf"holds no driver bundle porter ports; missing: (.*; )?virtio-net: "
                                          rf"{tree}/drivers/net/virtio_net.c"):
        fetch_unlisted(load_manifest(), tree)
    assert not (cache / "linux/2.6.32-porterpatch").exists()


def test_version_given_must_match_the_makefile(cache, linux_2_6_32, tmp_path):
    tree = linux_tree(linux_2_6_32, tmp_path / "linux")
    with pytest.raises(PorterError, match="its Makefile says Linux 2.6.32-porterpatch, not 2.6.32.5"):
        fetch_unlisted(load_manifest(), tree, "2.6.32.5")


def test_cli_marks_not_in_manifest_and_refuses_in_one_line(cache, linux_2_6_32, tmp_path):
    tree = linux_tree(linux_2_6_32, tmp_path / "linux")
    run = subprocess.run([sys.executable, "-m", "porter", "fetch", "--from", str(tree)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "Linux 2.6.32-porterpatch: not in manifest (its Makefile says 2.6.32-porterpatch)" in run.stdout
    run = subprocess.run([sys.executable, "-m", "porter", "fetch", "--from", str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "not a Linux tree" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
