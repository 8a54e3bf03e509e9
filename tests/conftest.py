"""Shared fixtures: the cached DDE and Linux inputs (tests skip with a reason
when the cache lacks them), and plans over porter's own C fixtures."""

import os
import shutil

import pytest

from porter import PorterError
from porter.cache import linux_dir
from porter.dde import current_dde

from fixture_plans import FIXTURE_LINUX
IN_CI = os.environ.get("CI") == "true"


def _cached_dde():
    try:
        return current_dde()
    except PorterError:
        return None


# Tests of the C parts (ddekit-linux, DDE build) find the DDE through this variable.
if "PORTER_DDE_TREE" not in os.environ and _cached_dde() is not None:
    os.environ["PORTER_DDE_TREE"] = str(_cached_dde().root)


def _require_tool(binary: str, package: str) -> None:
    """Tools .ci/run installs: missing in CI is a failure, elsewhere a skip with the fix."""
    if shutil.which(binary) is None:
        if IN_CI:
            pytest.fail(f"{binary} is missing; .ci/run installs {package} (scripts/install-debian-deps)")
        pytest.skip(f"{binary} is not installed (apt-get install {package})")


@pytest.fixture(scope="session")
def clang_available():
    _require_tool("clang", "clang")


@pytest.fixture(scope="session")
def qemu_available():
    _require_tool("qemu-system-x86_64", "qemu-system-x86")


@pytest.fixture(scope="session")
def dde_tree():
    tree = _cached_dde()
    if tree is None:
        pytest.skip("no DDE tree in porter's cache (run `porter fetch --dde [--from PATH]`)")
    return tree


@pytest.fixture(scope="session")
def dde_build(dde_tree):
    from porter.dde_build import ensure_build
    return ensure_build(dde_tree, log=lambda m: None)


@pytest.fixture(scope="session")
def linux_2_6_32():
    root = linux_dir("2.6.32")
    if not (root / "origin.json").is_file():
        pytest.skip("Linux 2.6.32 not in porter's cache (run `porter fetch --version 2.6.32 [--from PATH]`)")
    return root


@pytest.fixture
def fixture_tree(tmp_path):
    """A writable copy of the C fixtures (for tests that break them)."""
    dest = tmp_path / "linux"
    shutil.copytree(FIXTURE_LINUX, dest)
    return dest
