"""Build the real libdde_linux26 (i386) from the tree named by PORTER_DDE_TREE.

The build goes into PORTER_CACHE/dde-build when PORTER_CACHE is set (so later
runs reuse it), else into a pytest temporary directory.
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from porter.dde import PKGDIR_NAMES
from porter.dde_build import COMPAT_INCLUDE_DIR, DdeBuildError, build_dde

DDE_TREE = Path(os.environ.get("PORTER_DDE_TREE", "/nonexistent"))
# Debian's 2016 tree spells it libdde-linux26, the incubator libdde_linux26
PKG = next((n for n in PKGDIR_NAMES if (DDE_TREE / n / "Makeconf").is_file()), None)
needs_dde_tree = pytest.mark.skipif(
    PKG is None, reason="set PORTER_DDE_TREE to a DDE source tree (`porter fetch --dde` sets it for the tests)")


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture(scope="session")
def dde_build(tmp_path_factory):
    cache = os.environ.get("PORTER_CACHE")
    build_root = Path(cache) / "dde-build" if cache else tmp_path_factory.mktemp("dde-build")
    before = tree_snapshot(DDE_TREE)
    started = time.monotonic()
    build = build_dde(DDE_TREE, build_root, jobs=2)
    print(f"\nDDE build: {time.monotonic() - started:.1f}s (reused={build.reused}) in {build_root}")
    assert tree_snapshot(DDE_TREE) == before, "build_dde wrote into the source tree"
    return build


def is_elf32_i386(header: bytes) -> bool:
    return header[:4] == b"\x7fELF" and header[4] == 1 and header[18:20] == b"\x03\x00"  # ELFCLASS32, EM_386


@needs_dde_tree
def test_libraries_are_elf32_i386(dde_build):
    # the .o.a is one relocatable object (ld -r), taken whole; the _net.a an ar archive
    whole = dde_build.libdde_linux26_o.read_bytes()
    assert is_elf32_i386(whole) and whole[16:18] == b"\x01\x00"  # ET_REL
    archive = dde_build.libdde_linux26_net.read_bytes()
    assert archive.startswith(b"!<arch>\n")
    assert is_elf32_i386(archive[archive.find(b"\x7fELF"):])
    assert dde_build.obj_base == dde_build.build_dir / "build"
    assert (dde_build.obj_base / "include" / "linux-headers").is_dir()


@needs_dde_tree
def test_symbol_lists(dde_build):
    for name in ("register_netdev", "alloc_etherdev_mq", "__root_device_register",
                 "netif_receive_skb", "__kmalloc", "pci_iomap"):
        assert name in dde_build.defined_symbols
    for name in ("alloc_pages_exact", "MAYBE_BUILD_BUG_ON"):  # the gaps porter fills
        assert name not in dde_build.defined_symbols
    assert "ddekit_large_malloc" in dde_build.undefined_symbols
    assert not dde_build.undefined_symbols & dde_build.defined_symbols
    # built as non-PIC code (-fno-pie): no PC thunks (the GOT symbol stays: i386 TLS uses it)
    assert not any(name.startswith("__x86.get_pc_thunk") for name in dde_build.defined_symbols)
    print(f"\n{len(dde_build.defined_symbols)} symbols defined, "
          f"{len(dde_build.undefined_symbols)} needed from outside")


@needs_dde_tree
def test_second_call_reuses_without_make(dde_build, tmp_path, monkeypatch):
    failing_make = tmp_path / "bin" / "make"
    failing_make.parent.mkdir()
    failing_make.write_text("#!/bin/sh\necho make must not run >&2\nexit 1\n")
    failing_make.chmod(0o755)
    monkeypatch.setenv("PATH", f"{failing_make.parent}:{os.environ['PATH']}")
    mtime = dde_build.libdde_linux26_o.stat().st_mtime_ns
    messages = []

    started = time.monotonic()
    again = build_dde(DDE_TREE, dde_build.build_dir.parent.parent, log=messages.append)

    assert again.reused
    assert time.monotonic() - started < 10
    assert any("reusing" in m for m in messages)
    assert again.libdde_linux26_o.stat().st_mtime_ns == mtime
    assert again.defined_symbols == dde_build.defined_symbols


@needs_dde_tree
def test_broken_tree_names_step_and_compiler_error(tmp_path):
    broken = tmp_path / "dde"
    for name in (PKG, "libddekit"):
        shutil.copytree(DDE_TREE / name, broken / name, symlinks=True)
    victim = broken / PKG / "lib" / "src" / "arch" / "l4" / "cli_sti.c"
    victim.write_text(victim.read_text() + "\nint porter_injected_error( {\n")

    with pytest.raises(DdeBuildError) as failure:
        build_dde(broken, tmp_path / "build", log=lambda _: None)

    assert failure.value.step == "libraries"
    assert "cli_sti.c" in failure.value.output
    assert "error:" in failure.value.output
    assert not (tmp_path / "build" / "BUILT.json").exists()


def test_non_dde_directory_raises(tmp_path):
    (tmp_path / "not-a-dde" / "libddekit").mkdir(parents=True)
    with pytest.raises(DdeBuildError, match="not a DDE tree.*libdde-linux26/Makeconf") as failure:
        build_dde(tmp_path / "not-a-dde", tmp_path / "build")
    assert failure.value.step == "source"
    assert not (tmp_path / "build").exists()


def test_compat_header_for_running_gcc():
    major = subprocess.run(["gcc", "-dumpversion"], capture_output=True, text=True, check=True).stdout
    header = COMPAT_INCLUDE_DIR / "linux" / f"compiler-gcc{major.split('.')[0].strip()}.h"
    assert header.is_file(), f"add {header} (include <linux/porter-compiler-gcc.h>) for this gcc"
