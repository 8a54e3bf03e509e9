"""The Hurd target: generations and glue feature-tested from files, and
`porter check --target hurd` of a real tree through its own Makefile on the real
i686-gnu sysroot of each generation (skipped when porter's cache lacks it)."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from porter import PorterError
from porter.emit import emit_tree
from porter.hurd import generation as gen
from porter.hurd.check import run_hurd_check
from porter.hurd.glue import hurd_glue
from porter.hurd.prepare import prepare_sysroot, ready_sysroot
from porter.pipeline import load_inputs, scan_inputs
from porter.plan import plan_port


# ---------------------------------------------------------------- fixtures of our own

def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def dde_skeleton(root: Path) -> Path:
    write(root / "libdde_linux26" / "Makeconf", "# porter test\n")
    (root / "libdde_linux26" / "mk").mkdir(parents=True)
    (root / "libdde_linux26" / "contrib").mkdir()
    write(root / "libddekit" / "ddekit" / "pci.h", "/* porter test */\n")
    return root


def test_generation_2016_from_libmachdev_in_the_dde(tmp_path):
    root = dde_skeleton(tmp_path)
    write(root / "libmachdev" / "machdev.h", "void register_net(void);\nint trivfs_init(void);\n")
    g = gen.of_dde_tree(root)
    assert g.name == "2016" and "register_net" in g.evidence


def test_generation_2020_from_libmachdevdde(tmp_path):
    root = dde_skeleton(tmp_path)
    write(root / "libmachdevdde" / "machdevdde.h", "void * machdevdde_server(void *arg);\n")
    write(root / "libmachdev" / "machdev.h", "void register_net(void);\n")   # a stale copy beside it
    assert gen.of_dde_tree(root).name == "2020"


def test_generation_unknown_is_refused_naming_what_was_looked_for(tmp_path):
    root = dde_skeleton(tmp_path)
    with pytest.raises(PorterError, match="libmachdevdde/machdevdde.h.*libmachdev/machdev.h"):
        gen.of_dde_tree(root)


def test_generation_of_a_hurd_tree(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    (old / "libtrivfs").mkdir(parents=True)
    write(new / "libmachdev" / "machdev.h", "void machdev_register (struct machdev_device_emulation_ops *ops);\n")
    assert gen.of_hurd_tree(old).name == "2016" and gen.of_hurd_tree(new).name == "2020"


def test_glue_2016_calls_the_dde_libmachdev(tmp_path):
    root = dde_skeleton(tmp_path)
    write(root / "libmachdev" / "machdev.h", "void register_net(void);\n")
    glue = hurd_glue(root)
    assert (glue.generation, glue.register_net, glue.device_server, glue.trivfs_server) == \
        ("2016", "register_net", "ds_server", "trivfs_server")
    assert "-lmachdev" in glue.libs and "-lmachdevdde" not in glue.libs


def _dde_2020(root: Path, net_c: str) -> Path:
    dde_skeleton(root)
    write(root / "libmachdevdde" / "machdevdde.h", "void * machdevdde_server(void *arg);\n")
    write(root / "libmachdevdde" / "net.c", net_c)
    return root


def test_glue_2020_registration_function_is_read_from_libmachdevdde(tmp_path):
    early = _dde_2020(tmp_path / "early", "static int x;\nvoid register_net()\n{\n  machdev_register (&ops);\n}\n")
    late = _dde_2020(tmp_path / "late", "void\nmachdevdde_register_net (void)\n{\n  machdev_register (&ops);\n}\n")
    a, b = hurd_glue(early), hurd_glue(late)
    assert (a.register_net, a.register_declared) == ("register_net", False)
    assert b.register_net == "machdevdde_register_net"
    assert "-lmachdevdde" in a.libs and "-lirqhelp" in a.libs


def test_glue_2020_follows_hurd_git_libmachdev(tmp_path):
    dde = _dde_2020(tmp_path / "dde", "void register_net()\n{\n}\n")
    hurd = tmp_path / "hurd"
    write(hurd / "libmachdev" / "machdev.h",
          "int machdev_trivfs_init(int argc, char **argv, mach_port_t bootstrap_resume_task, const char *name, "
          "const char *path, mach_port_t *bootstrap);\nvoid machdev_trivfs_server_startup(mach_port_t bootstrap);\n")
    glue = hurd_glue(dde, hurd)
    assert glue.trivfs_init.startswith("argc, argv") and glue.trivfs_server == "startup+loop"
    write(hurd / "libmachdev" / "machdev.h", "int machdev_trivfs_init(int a, int b, int c, int d, int e, int f, "
                                             "int g);\n")
    with pytest.raises(PorterError, match="machdev_trivfs_init.*form porter does not know"):
        hurd_glue(dde, hurd)


def _git_repo(path: Path, files: dict[str, str]) -> str:
    for rel, text in files.items():
        write(path / rel, text)
    run = lambda *a: subprocess.run(["git", "-C", str(path), *a], check=True, capture_output=True, text=True)
    run("init", "-q")
    run("add", "-A")
    run("-c", "user.name=porter", "-c", "user.email=porter@test", "commit", "-qm", "fixture")
    return run("rev-parse", "HEAD").stdout.strip()


def test_fetch_hurd_recognises_components_by_their_files(tmp_path):
    from porter.hurd.sources import _candidates
    _git_repo(tmp_path / "mirrors" / "a" / "repo", {"kern/sched_prim.c": "", "include/mach/mach.defs": ""})
    write(tmp_path / "mirrors" / "b" / "migcom.c", "")
    write(tmp_path / "mirrors" / "b" / "parser.y", "")
    write(tmp_path / "debian" / "glibc_2.41-1.dsc", "Format: 3.0 (quilt)\n")
    found, dsc_dirs = _candidates([tmp_path / "mirrors", tmp_path / "debian"])
    assert [p.name for p in found["gnumach"]] == ["repo"] and [p.name for p in found["mig"]] == ["b"]
    assert "hurd" not in found and dsc_dirs == [tmp_path / "debian"]


def test_fetch_hurd_refuses_a_git_dir_without_the_pinned_commit(tmp_path, monkeypatch):
    from porter.hurd.sets import Pin
    from porter.hurd.sources import _fetch_component
    monkeypatch.setenv("PORTER_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "gnumach"
    _git_repo(repo, {"kern/sched_prim.c": "", "include/mach/mach.defs": ""})
    pin = Pin("0123456789abcdef0123456789abcdef01234567", "v1.8", "2025-07-19")
    with pytest.raises(PorterError, match="none of .*gnumach has commit 0123456789ab.*v1.8"):
        _fetch_component("gnumach", [repo], pin, "https://invalid.example/gnumach.git", tmp_path)
    assert not (tmp_path / "cache" / "hurd" / "src").exists()


def test_fetch_hurd_takes_the_pinned_commit(tmp_path, monkeypatch):
    from porter.hurd.sets import Pin
    from porter.hurd.sources import _fetch_component
    monkeypatch.setenv("PORTER_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "mig"
    commit = _git_repo(repo, {"migcom.c": "int main;\n", "parser.y": ""})
    got = _fetch_component("mig", [repo], Pin(commit, "v1.8", "2023-12-17"), "unused", tmp_path)
    assert (got.tree / "migcom.c").read_text() == "int main;\n"
    assert got.origin["commit"] == commit and got.origin["kind"] == "git" and got.ident == commit


def test_missing_build_tools_are_named_with_the_install_line(monkeypatch):
    import porter.hurd.prepare as prepare
    real = shutil.which
    monkeypatch.setattr(prepare.shutil, "which", lambda t: None if t in ("flex", "bison") else real(t))
    with pytest.raises(PorterError, match=r"needs bison, flex: apt-get install bison flex"):
        prepare.prepare_sysroot("2020", None)


def test_fetch_hurd_without_a_dde_tree_says_what_to_fetch_first(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTER_CACHE", str(tmp_path))
    monkeypatch.delenv("PORTER_DDE_TREE", raising=False)
    r = subprocess.run([sys.executable, "-m", "porter", "fetch", "--hurd"], capture_output=True, text=True,
                       env={**__import__("os").environ, "PORTER_CACHE": str(tmp_path)})
    assert r.returncode == 2 and "run `porter fetch --dde` first" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------- the real sysroots

GENERATIONS = ("2016", "2020")


def _dde_tree(generation):
    from porter.hurd.prepare import dde_for
    try:
        return dde_for(generation)
    except PorterError:
        pytest.skip(f"no DDE tree of the {generation} generation in porter's cache "
                    "(run `porter fetch --dde --from PATH` with one)")


@pytest.fixture(scope="module", params=GENERATIONS)
def sysroot(request, linux_2_6_32):
    dde = _dde_tree(request.param)
    ready = ready_sysroot(request.param, dde)
    if ready is None:
        pytest.skip(f"the {request.param} i686-gnu sysroot is not built (run `porter fetch --hurd` "
                    "and `porter hurd sysroot`)")
    return ready, dde


def _tree(dde, out: Path, bundle: str = "virtio-net") -> Path:
    inputs = load_inputs(bundle, "2.6.32", dde=dde)
    emit_tree(plan_port(inputs, scan_inputs(inputs)), out)
    return out


@pytest.fixture(scope="module")
def tree(sysroot, tmp_path_factory):
    root, dde = sysroot
    return _tree(dde, tmp_path_factory.mktemp(f"hurd{root.generation}") / "dde_virtio_net")


def test_every_file_builds_for_the_hurd_with_no_unexplained_symbol(sysroot, tree):
    root, _ = sysroot
    t0 = time.monotonic()
    res = run_hurd_check(tree, root)
    seconds = time.monotonic() - t0
    print(f"\n{root.generation}: porter check --target hurd took {seconds:.1f}s")
    names = [c.source for c in res.compiles]
    assert {"main.c", "machdev_glue.c", "virtio.c", "virtio_ring.c", "virtio_pci.c", "virtio_net.c"} <= set(names)
    assert all(c.ok for c in res.compiles), "\n".join(c.output for c in res.compiles if not c.ok)
    assert not any("implicit declaration" in c.output for c in res.compiles)
    assert res.undefined == {} and res.ok
    machdev = "libmachdev" if root.generation == "2016" else "libmachdevdde"
    glue = json.loads((tree / "porting.json").read_text())["hurd"]
    assert glue["register_net"] in res.from_library(machdev)
    assert "__pci_register_driver" in res.from_library("libdde_linux26.o")
    assert "register_netdev" in res.from_library("libdde_linux26_net")


def test_the_virtio_blk_tree_builds_for_the_hurd(sysroot, tmp_path):
    """The disk's main.c and its glue (its own block device emulation, registered with
    libmachdev) compile for the Hurd and link-check against the DDE's block library."""
    root, dde = sysroot
    tree = _tree(dde, tmp_path / "dde_virtio_blk", bundle="virtio-blk")
    res = run_hurd_check(tree, root)
    names = [c.source for c in res.compiles]
    assert {"main.c", "machdev_glue.c", "virtio_blk.c", "porter_blkdev.c", "porter_blkio.c"} <= set(names)
    assert all(c.ok for c in res.compiles), "\n".join(c.output for c in res.compiles if not c.ok)
    assert not any("implicit declaration" in c.output for c in res.compiles)
    assert res.undefined == {} and res.ok
    glue = json.loads((tree / "porting.json").read_text())["hurd"]
    assert glue["generation"] == root.generation
    # libmachdev's device server finds the disks through the emulation the glue registers
    assert glue["block_register"] in res.from_library("libmachdev")
    assert glue["block_create_port"] in res.from_library("libmachdev")
    assert "blk_init_queue" in res.from_library("libdde_linux26_block")
    assert "register_netdev" not in res.from_library("libdde_linux26_net")
    assert "-ldde_linux26_block " in (tree / "Makefile").read_text()


def test_the_tree_says_which_generation_it_is_for(sysroot, tree):
    root, _ = sysroot
    report = json.loads((tree / "porting.json").read_text())
    assert report["hurd"]["generation"] == root.generation
    assert f"**{root.generation}** generation" in (tree / "PORTING.md").read_text()
    assert f"-l{'machdev' if root.generation == '2016' else 'machdevdde'} " in (tree / "Makefile").read_text()


def test_a_misspelled_libmachdev_call_fails(sysroot, tree, tmp_path):
    root, _ = sysroot
    glue = json.loads((tree / "porting.json").read_text())["hurd"]
    bad = tmp_path / "bad"
    shutil.copytree(tree, bad)
    src = bad / "machdev_glue.c"
    src.write_text(src.read_text().replace(f"{glue['device_init']}();", f"{glue['device_init']}_now();"))
    res = run_hurd_check(bad, root)
    failed = {c.source: c.output for c in res.compiles if not c.ok}
    assert list(failed) == ["machdev_glue.c"] and f"{glue['device_init']}_now" in failed["machdev_glue.c"]
    # declared, so it compiles: then the link check names it
    src.write_text(f"void {glue['device_init']}_now(void);\n" + src.read_text())
    res = run_hurd_check(bad, root)
    assert all(c.ok for c in res.compiles) and list(res.undefined) == [f"{glue['device_init']}_now"]
    assert not res.ok


def test_the_2016_glue_does_not_build_against_todays_hurd(linux_2_6_32, tmp_path):
    old_dde, new_dde = _dde_tree("2016"), _dde_tree("2020")
    new_root = ready_sysroot("2020", new_dde)
    if new_root is None:
        pytest.skip("the 2020 i686-gnu sysroot is not built (run `porter hurd sysroot`)")
    old_tree = _tree(old_dde, tmp_path / "dde_virtio_net")
    res = run_hurd_check(old_tree, new_root)
    failed = {c.source: c.output for c in res.compiles if not c.ok}
    assert "machdev_glue.c" in failed and not res.ok
    for name in ("register_net", "ds_server", "mach_device_init", "trivfs_init", "trivfs_server"):
        assert name in failed["machdev_glue.c"], name
    assert "implicit declaration" in failed["machdev_glue.c"]


@pytest.fixture(scope="module")
def rng_tree(sysroot, tmp_path_factory):
    root, dde = sysroot
    return _tree(dde, tmp_path_factory.mktemp(f"hurd{root.generation}") / "dde_virtio_rng", "virtio-rng")


def test_the_rng_translator_builds_for_the_hurd_with_no_unexplained_symbol(sysroot, rng_tree):
    """virtio-rng's main.c and trivfs glue, the driver and porter's hw_random core, through the
    tree's own Makefile for i686-gnu: every symbol from a library of that Hurd."""
    root, _ = sysroot
    res = run_hurd_check(rng_tree, root)
    names = {c.source for c in res.compiles}
    assert {"main.c", "machdev_glue.c", "virtio-rng.c", "porter_hw_random.c"} <= names
    assert all(c.ok for c in res.compiles), "\n".join(c.output for c in res.compiles if not c.ok)
    assert not any("implicit declaration" in c.output for c in res.compiles)
    assert res.undefined == {} and res.ok
    glue = json.loads((rng_tree / "porting.json").read_text())["hurd"]
    assert glue["generation"] == root.generation
    assert "trivfs_startup" in res.from_library("libtrivfs")
    assert "ports_manage_port_operations_multithread" in res.from_library("libports")
    assert "__pci_register_driver" in res.from_library("libdde_linux26.o")
    # the hw_random core is the tree's own (porter_hw_random.c), never looked for in a library
    assert not any("hwrng" in sym for lib in res.provided.values() for sym in lib)


def test_a_misspelled_trivfs_call_in_the_rng_glue_fails(sysroot, rng_tree, tmp_path):
    root, _ = sysroot
    bad = tmp_path / "bad"
    shutil.copytree(rng_tree, bad)
    src = bad / "machdev_glue.c"
    text = src.read_text()
    assert "trivfs_startup(bootstrap" in text
    # declared, so it compiles: the link check against the Hurd's libraries names it
    src.write_text("int trivfs_startup_now();\n" + text.replace("trivfs_startup(bootstrap", "trivfs_startup_now(bootstrap"))
    res = run_hurd_check(bad, root)
    assert all(c.ok for c in res.compiles), "\n".join(c.output for c in res.compiles if not c.ok)
    assert list(res.undefined) == ["trivfs_startup_now"] and not res.ok


def test_a_warm_sysroot_is_reused_without_building(sysroot):
    root, dde = sysroot
    said = []
    again = prepare_sysroot(root.generation, dde, log=said.append)
    assert again.root == root.root and said == []


def test_cli_check_target_hurd_writes_junit(sysroot, tree, tmp_path):
    junit = tmp_path / "hurd.xml"
    r = subprocess.run([sys.executable, "-m", "porter", "check", str(tree), "--target", "hurd",
                        "--junit", str(junit)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "check: passed" in r.stdout and "0 unexplained" in r.stdout
    xml = junit.read_text()
    assert 'name="machdev_glue.c"' in xml and "<failure" not in xml
