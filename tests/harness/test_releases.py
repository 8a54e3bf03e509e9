"""Every release porter's manifest lists, ported, built into a driver host and run on
QEMU's virtio-net-pci: 10,000 frames each way through the DMA guard without loss or
leak, then ARP and pings to a real kernel. Each release negotiates its own features
(2.6.28 has no control queue, up to 2.6.31 ask for NOTIFY_ON_EMPTY, ...). The full
suite (test_virtio_net.py) runs on one release; `porter test TREE` runs it on any."""

import pytest

from porter.build import build_host
from porter.cache import linux_dir
from porter.emit import emit_tree
from porter.harness.netns import netns_usable
from porter.harness.rig import NetRig
from porter.manifest import load_manifest
from porter.pipeline import load_inputs, scan_inputs
from porter.plan import plan_port

from test_virtio_net import assert_clean, pings_to_the_kernel, ten_thousand_each_way

pytestmark = [pytest.mark.upstream, pytest.mark.qemu]

RELEASES = list(load_manifest().releases)


@pytest.fixture(scope="module", params=RELEASES)
def release_host(request, dde_tree, dde_build, tmp_path_factory):
    version = request.param
    if not (linux_dir(version) / "origin.json").is_file():
        pytest.skip(f"Linux {version} not in porter's cache (run `porter fetch --version {version}`)")
    inputs = load_inputs("virtio-net", version)
    plan = plan_port(inputs, scan_inputs(inputs))
    assert plan.unmapped == [], [f"{d.name}: {d.note}" for d in plan.unmapped]
    tree = tmp_path_factory.mktemp(f"release-{version}") / "dde_virtio_net"
    emit_tree(plan, tree)
    return version, tree, build_host(tree, dde_tree, dde_build, log=lambda m: None).executable


def test_release_carries_ten_thousand_frames_each_way_on_qemu(release_host, qemu_available):
    _, _, host = release_host
    with NetRig(host, backend="qemu") as rig:
        ten_thousand_each_way(rig)
        assert_clean(rig)


def test_release_answers_pings_from_the_kernel_on_qemu(release_host, qemu_available):
    why = netns_usable()
    if why:
        pytest.skip(f"kernel peer in a network namespace {why}")
    _, _, host = release_host
    with NetRig(host, backend="qemu", wire="tap") as rig:
        rig.host.open("eth0")
        pings_to_the_kernel(rig, 20)
        assert_clean(rig)


@pytest.fixture(scope="module")
def unlisted_host(linux_2_6_32, dde_tree, dde_build, tmp_path_factory):
    """A tree of a release the manifest does not list: 2.6.32 with a patch of porter's own
    (a smaller NAPI weight) and a Makefile naming it 2.6.32-porterpatch, taken in by
    `porter fetch --from` (into a cache of its own)."""
    from porter.unlisted import fetch_unlisted
    tmp = tmp_path_factory.mktemp("unlisted")
    tree = tmp / "linux"
    for p in linux_2_6_32.rglob("*"):
        if p.is_file() and p.name != "origin.json":
            (tree / p.relative_to(linux_2_6_32)).parent.mkdir(parents=True, exist_ok=True)
            (tree / p.relative_to(linux_2_6_32)).write_bytes(p.read_bytes())
    (tree / "Makefile").write_text("VERSION = 2\nPATCHLEVEL = 6\nSUBLEVEL = 32\nEXTRAVERSION = -porterpatch\n")
    net = tree / "drivers/net/virtio_net.c"
    net.write_text(net.read_text().replace("static int napi_weight = 128;", "static int napi_weight = 64;"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PORTER_CACHE", str(tmp / "cache"))
        got = fetch_unlisted(load_manifest(), tree)
        inputs = load_inputs("virtio-net", got.version, dde=dde_tree)
        plan = plan_port(inputs, scan_inputs(inputs))
    assert not got.listed and plan.unmapped == []
    out = tmp / "dde_virtio_net"
    emit_tree(plan, out)
    assert "static int napi_weight = 64;" in (out / "virtio_net.c").read_text()
    return out, build_host(out, dde_tree, dde_build, log=lambda m: None).executable


def test_a_tree_not_in_the_manifest_carries_ten_thousand_frames_each_way(unlisted_host, qemu_available):
    import json
    tree, host = unlisted_host
    assert json.loads((tree / "porting.json").read_text())["in_manifest"] is False
    with NetRig(host, backend="qemu") as rig:
        ten_thousand_each_way(rig)
        assert_clean(rig)
