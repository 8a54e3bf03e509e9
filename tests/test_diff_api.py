"""porter diff-api: what a bundle asks of the kernel in one release and not another."""

import json
import subprocess
import sys

import pytest

from porter.cache import linux_dir


def diff(old, new, bundle="virtio-net"):
    r = subprocess.run([sys.executable, "-m", "porter", "diff-api", old, new, bundle, "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture
def releases_32_33(dde_tree):
    for v in ("2.6.32", "2.6.33"):
        if not (linux_dir(v) / "origin.json").is_file():
            pytest.skip(f"Linux {v} not in porter's cache (run `porter fetch --version {v} [--from PATH]`)")


@pytest.mark.upstream
def test_2_6_33_allocates_rx_skbs_with_the_newer_helper(releases_32_33):
    d = diff("2.6.32", "2.6.33")
    assert "netdev_alloc_skb_ip_align" in [a["name"] for a in d["only_new"]]
    assert "netdev_alloc_skb" in [a["name"] for a in d["only_old"]]
    assert all(a["uses"] for a in d["only_new"] + d["only_old"])       # each with where it is used
    back = diff("2.6.33", "2.6.32")                                     # the other way round, mirrored
    assert back["only_old"] == d["only_new"] and back["only_new"] == d["only_old"]
    assert back["rules_only_old"] == d["rules_only_new"] and back["rules_only_new"] == d["rules_only_old"]


@pytest.mark.upstream
def test_a_release_against_itself_differs_in_nothing(releases_32_33):
    d = diff("2.6.32", "2.6.32")
    assert d["only_old"] == d["only_new"] == d["changed"] == d["rules_only_old"] == d["rules_only_new"] == []


def test_an_unknown_release_is_bad_input():
    r = subprocess.run([sys.executable, "-m", "porter", "diff-api", "2.6.32", "2.6.99", "virtio-net"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "2.6.99" in r.stderr and "Traceback" not in r.stderr
