"""porter as users install it: a wheel built from this checkout, installed into a
fresh virtual environment, works from any directory, with everything it reads at
run time (rules, templates, manifest, dde-shims, the harness suite) inside it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from porter import __version__
from porter.cache import linux_dir
from porter.dde import current_dde

CHECKOUT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin directory, a working directory outside the checkout)."""
    work = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"),
                        str(CHECKOUT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    wheels = list((work / "dist").glob("porter-*.whl"))
    assert len(wheels) == 1 and wheels[0].name.startswith(f"porter-{__version__}-")
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    bin_dir = work / "venv" / "bin"
    r = subprocess.run([str(bin_dir / "pip"), "install", "-q", str(wheels[0])], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    outside = work / "elsewhere"
    outside.mkdir()
    return bin_dir, outside


def _env(bin_dir: Path) -> dict:
    # nothing of the checkout on the path: the installed package alone
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    return env


def test_installed_porter_runs_from_anywhere(installed):
    bin_dir, outside = installed
    env = _env(bin_dir)
    for argv in ([str(bin_dir / "porter"), "--version"], [str(bin_dir / "python"), "-m", "porter", "--version"]):
        r = subprocess.run(argv, capture_output=True, text=True, cwd=outside, env=env)
        assert r.returncode == 0 and r.stdout.strip() == f"porter {__version__}", r.stderr
    r = subprocess.run([str(bin_dir / "porter"), "port", "--help"], capture_output=True, text=True, cwd=outside,
                       env=env)
    assert r.returncode == 0 and "virtio-net" in r.stdout and "2.6.28" in r.stdout
    # the package imports from the venv, not from this checkout, and finds its data inside itself
    r = subprocess.run([str(bin_dir / "python"), "-c",
                        "import porter, porter.emit, porter.manifest; print(porter.__file__); "
                        "print(porter.emit.TEMPLATES_DIR); print(porter.manifest.MANIFEST_PATH); "
                        "print(porter.SHIMS_DIR / 'ddekit-linux' / 'arena.c')"],
                       capture_output=True, text=True, cwd=outside, env=env)
    assert r.returncode == 0, r.stderr
    paths = [Path(p) for p in r.stdout.split()]
    venv = bin_dir.parent
    assert all(venv in p.parents for p in paths), paths
    assert all(p.exists() for p in paths[1:]), paths
    assert not any(CHECKOUT in p.parents for p in paths)


def test_installed_porter_ports_a_tree_outside_the_checkout(installed):
    if not (linux_dir("2.6.32") / "origin.json").is_file() or current_dde() is None:
        pytest.skip("Linux 2.6.32 or a DDE tree not in porter's cache (run `porter fetch --version 2.6.32` "
                    "and `porter fetch --dde`)")
    bin_dir, outside = installed
    env = _env(bin_dir)
    env["PORTER_DDE_TREE"] = str(current_dde().root)
    r = subprocess.run([str(bin_dir / "porter"), "port", "virtio-net", "--version", "2.6.32", "--out", "tree"],
                       capture_output=True, text=True, cwd=outside, env=env)
    assert r.returncode == 0, r.stderr
    tree = outside / "tree"
    for name in ("Makefile", "main.c", "machdev_glue.c", "virtio_net.c", "include/porter/scatterlist.h",
                 "compat/linux/compiler-gcc12.h", "PORTING.md"):
        assert (tree / name).is_file(), name
    # the same bytes the checkout's porter emits
    here = outside / "from-checkout"
    r2 = subprocess.run([sys.executable, "-m", "porter", "port", "virtio-net", "--version", "2.6.32", "--out",
                         str(here)], capture_output=True, text=True, cwd=CHECKOUT,
                        env={**os.environ, "PORTER_DDE_TREE": str(current_dde().root)})
    assert r2.returncode == 0, r2.stderr
    for name in ("Makefile", "main.c", "machdev_glue.c", "virtio_net.c"):
        assert (tree / name).read_bytes() == (here / name).read_bytes(), name
    r = subprocess.run([str(bin_dir / "porter"), "check", "tree"], capture_output=True, text=True, cwd=outside,
                       env=env)
    assert r.returncode == 0 and "check: passed" in r.stdout, r.stdout + r.stderr
    shutil.rmtree(tree)
