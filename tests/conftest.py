"""Shared fixtures: the cached DDE and Linux inputs (tests skip with a reason
when the cache lacks them), and plans over porter's own C fixtures."""

import os
import shutil
from pathlib import Path

import pytest

from porter import PorterError
from porter.cache import linux_dir
from porter.dde import current_dde
from porter.manifest import Bundle, Release
from porter.pipeline import Inputs, scan_inputs
from porter.plan import plan_port
from porter.rules import load_rules

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_LINUX = FIXTURES / "linux"
IN_CI = os.environ.get("CI") == "true"


def _cached_dde():
    try:
        return current_dde()
    except PorterError:
        return None


# Tests of the C parts (ddekit-linux, DDE build) find the DDE through this variable.
if "PORTER_DDE_TREE" not in os.environ and _cached_dde() is not None:
    os.environ["PORTER_DDE_TREE"] = str(_cached_dde().root)


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


def fixture_inputs(dde, sources, headers=(), rule_paths=None, root=FIXTURE_LINUX, symbols=None) -> Inputs:
    """Inputs over porter's own Linux-style C fixtures (a bundle that is not in the manifest)."""
    files = {p: "" for p in (*sources, *headers)}
    return Inputs(Bundle("fixture", "porter test fixture", tuple(sources), tuple(headers)),
                  Release("fixture", "", files), root, tuple(sources), tuple(headers), dde,
                  load_rules(rule_paths), symbols)


def fixture_plan(dde, sources, headers=(), rule_paths=None, root=FIXTURE_LINUX, symbols=None):
    inputs = fixture_inputs(dde, sources, headers, rule_paths, root, symbols)
    return plan_port(inputs, scan_inputs(inputs))


@pytest.fixture
def fixture_tree(tmp_path):
    """A writable copy of the C fixtures (for tests that break them)."""
    dest = tmp_path / "linux"
    shutil.copytree(FIXTURE_LINUX, dest)
    return dest
