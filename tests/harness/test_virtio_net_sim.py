"""The ported 2.6.32 virtio-net on porter's sim device: the same TX/RX checks as
on QEMU, and hostile devices (each misbehaviour switch) ending in a clean,
reported failure: never a hung or crashed test run."""

import threading

import pytest

from porter.harness.driver_host import DriverHostError
from porter.harness.rig import NetRig
from porter.harness.sim_net import DEFAULT_FEATURES
from porter.harness.virtio_net import VIRTIO_NET_F_MRG_RXBUF
from porter.harness.virtio_pci import bit

pytestmark = pytest.mark.upstream

PEER = b"\x02\x00\x00\x00\x00\x09"
SIZES = (60, 61, 64, 100, 128, 512, 1000, 1500, 1514)
FEATURES = {"mrg_rxbuf=on": DEFAULT_FEATURES,
            "mrg_rxbuf=off": DEFAULT_FEATURES & ~bit(VIRTIO_NET_F_MRG_RXBUF)}


def frame(dst, src, size, tag=0):
    return dst + src + b"\x88\xb5" + bytes((tag + i) & 0xFF for i in range(size - 14))


@pytest.fixture(params=sorted(FEATURES))
def rig(request, virtio_net_host):
    with NetRig(virtio_net_host, backend="sim", device_options={"features": FEATURES[request.param]}) as r:
        r.host.open("eth0")
        yield r
        assert r.dma.violations == [] and r.device.errors == []


def test_mac_and_link(rig):
    info = rig.host.info("eth0")
    assert info.mac == rig.mac_bytes and info.link_up and info.running


def test_tx_and_rx_byte_identical(rig):
    for size in SIZES:
        out = frame(PEER, rig.mac_bytes, size, size)
        rig.host.send(out)
        assert rig.peer_recv() == out
        inbound = frame(rig.mac_bytes, PEER, size, size + 1)
        rig.peer_send(inbound)
        assert rig.host.receive(timeout=5) == ("eth0", inbound)


def test_two_thousand_frames_each_way(rig):
    n = 2000
    tx = [frame(PEER, rig.mac_bytes, 60 + i % 1455, i) for i in range(n)]
    got = []
    reader = threading.Thread(target=lambda: got.extend(rig.peer_recv(10) for _ in range(n)))
    reader.start()
    for f in tx:
        rig.host.send(f)
    reader.join()
    assert got == tx
    rx = [frame(rig.mac_bytes, PEER, 60 + i % 1455, i) for i in range(n)]
    sender = threading.Thread(target=lambda: [rig.peer_send(f) for f in rx])
    sender.start()
    assert [rig.host.receive(timeout=10)[1] for _ in range(n)] == rx
    sender.join()


def test_control_queue_commands_reach_the_device(rig):
    rig.host.rx_mode("eth0", promisc=True, multicast=[bytes.fromhex("01005e000001")])
    assert rig.device.rx_filter.promisc
    assert all(c.ack == 0 for c in rig.device.ctrl_commands)      # VIRTIO_NET_OK
    assert rig.dma.chains_checked > 0


# -- hostile devices ---------------------------------------------------------------

def traffic_fails(rig, n=20) -> str:
    """Run traffic both ways; return how it failed (a clean, reported failure)."""
    try:
        for i in range(n):
            rig.host.send(frame(PEER, rig.mac_bytes, 100, i), timeout=2)
            rig.peer_recv(2)
        for i in range(n):
            inbound = frame(rig.mac_bytes, PEER, 100, i)
            rig.peer_send(inbound)
            _, got = rig.host.receive(timeout=2)
            if got != inbound:
                return f"frame {i} arrived altered ({len(got)} bytes for {len(inbound)})"
    except (TimeoutError, DriverHostError, OSError) as e:
        return f"{type(e).__name__}: {e}"
    return ""


@pytest.fixture
def hostile(virtio_net_host):
    rigs = []

    def make(**faults):
        r = NetRig(virtio_net_host, backend="sim", device_options=faults)
        rigs.append(r)
        r.host.open("eth0")
        return r
    yield make
    for r in rigs:
        r.close()


@pytest.mark.parametrize("fault, value, driver_says", [
    ("used_idx_jump", 1, "is not a head!"),
    ("bad_used_id", True, "out of range"),
])
def test_hostile_used_ring_is_detected_by_the_driver(hostile, fault, value, driver_says):
    rig = hostile()
    assert traffic_fails(rig, 5) == ""                  # healthy first
    setattr(rig.device.faults, fault, value)
    failure = traffic_fails(rig)
    assert failure, f"{fault}: traffic went on as if nothing happened"
    assert driver_says in rig.host.output()             # virtio_ring's BAD_RING report
    assert rig.host.proc.poll() is None                 # the driver stopped the queue, did not crash


def test_oversize_used_length_is_visible(hostile):
    rig = hostile()
    rig.device.faults.oversize_len = True
    failure = traffic_fails(rig)
    # 2.6.32 trusts the device's length: the harness sees the altered frame
    assert "arrived altered" in failure or failure.startswith(("TimeoutError", "DriverHost"))


def test_garbage_config_is_visible(hostile):
    rig = hostile(garbage_config=True)
    assert rig.host.info("eth0").mac != rig.mac_bytes


def test_missing_interrupts_end_in_a_timeout(hostile):
    rig = hostile()
    rig.device.faults.no_interrupts = True
    rig.peer_send(frame(rig.mac_bytes, PEER, 100))
    with pytest.raises(TimeoutError):
        rig.host.receive(timeout=2)
