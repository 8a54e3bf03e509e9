"""Which harness suite proves a tree, and how it is run (for `porter test` and `porter matrix`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from . import DATA_ROOT
from . import PorterError
from .tree import emitted_tree, tree_report

# bundle -> device -> the harness files that prove its trees (tests/harness/)
TEST_SUITES = {"virtio-net": {"qemu": ["test_driver_host.py", "test_virtio_net.py"],
                              "sim": ["test_virtio_net.py"]},
               "virtio-blk": {"qemu": ["test_virtio_blk.py"], "sim": ["test_virtio_blk.py"]},
               "virtio-rng": {"qemu": ["test_virtio_rng.py"], "sim": ["test_virtio_rng.py"]}}


def harness_command(tree: Path, device: str, pytest_args=(), quiet: bool = True) -> tuple[list[str], dict]:
    """The pytest command line and environment that run ``tree``'s suite on ``device``."""
    harness = DATA_ROOT / "tests" / "harness"
    if not harness.is_dir():
        raise PorterError(f"{harness}: the harness tests are missing; reinstall porter")
    tree = emitted_tree(tree)
    bundle = tree_report(tree).get("bundle")
    if bundle not in TEST_SUITES:
        raise PorterError(f"{tree}: bundle {bundle!r} has no harness suite (porter has suites for "
                          f"{', '.join(sorted(TEST_SUITES))})")
    files = [str(harness / f) for f in TEST_SUITES[bundle][device]]
    # one suite runs on every backend; this picks the one asked for (tests/harness/conftest.py)
    env = dict(os.environ, PORTER_TEST_TREE=str(tree), PORTER_TEST_BACKENDS=device)
    argv = [sys.executable, "-m", "pytest", *(["-q"] if quiet else []), "-p", "no:cacheprovider",
            *files, *pytest_args]
    return argv, env


def run_harness(tree: Path, device: str, pytest_args=(), **popen) -> int:
    """Run the suite; 0 passed, 1 a test failed, 2 it could not run (pytest's 2-5)."""
    argv, env = harness_command(tree, device, pytest_args)
    rc = subprocess.call(argv, cwd=DATA_ROOT, env=env, **popen)
    return {0: 0, 1: 1}.get(rc, 2)
