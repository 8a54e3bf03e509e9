"""The ported virtio-net tree running on the real libdde_linux26 in a 32-bit
driver host, probing QEMU's own virtio-net-pci through the harness."""

import os
import signal
import time

import pytest

from porter.harness import protocol as P
from porter.harness.driver_host import DriverHostDied, DriverHostError
from porter.harness.rig import NetRig
from porter.harness.virtio_pci import (
    VIRTIO_PCI_GUEST_FEATURES, VIRTIO_PCI_HOST_FEATURES, VIRTIO_PCI_QUEUE_PFN,
    VIRTIO_PCI_QUEUE_SEL, VIRTIO_PCI_STATUS)

pytestmark = [pytest.mark.upstream, pytest.mark.qemu]

ACK, DRIVER, DRIVER_OK = 1, 2, 4
# virtio-net and ring feature bits (legacy virtio spec) that QEMU offers by default
FEATURE_BITS = {"VIRTIO_NET_F_MAC": 5, "VIRTIO_NET_F_MRG_RXBUF": 15, "VIRTIO_NET_F_STATUS": 16,
                "VIRTIO_NET_F_CTRL_VQ": 17, "VIRTIO_NET_F_CTRL_RX": 18, "VIRTIO_RING_F_INDIRECT_DESC": 28}


@pytest.fixture
def rig(qemu_available, virtio_net_host):
    with NetRig(virtio_net_host, trace=True) as r:
        yield r


def pio_writes(rig, offset):
    return [a.value for a in rig.machine.trace if a.kind == "pio" and a.write and a.where == offset]


def test_probe_registers_eth0_with_register_traffic(rig, driver_features):
    assert rig.host.ready_ifnames == ["eth0"]
    status = pio_writes(rig, VIRTIO_PCI_STATUS)
    # reset, ACKNOWLEDGE, DRIVER, then DRIVER_OK after the queues are set up
    assert status[:3] == [0, ACK, ACK | DRIVER] and status[-1] == ACK | DRIVER | DRIVER_OK
    offered = [a.value for a in rig.machine.trace
               if a.kind == "pio" and not a.write and a.where == VIRTIO_PCI_HOST_FEATURES]
    [accepted] = pio_writes(rig, VIRTIO_PCI_GUEST_FEATURES)
    assert offered and accepted & ~offered[-1] == 0     # never more than QEMU offered
    # each feature the tree's drivers ask for (2.6.32: all of these) is taken when QEMU offers it
    assert "VIRTIO_NET_F_MAC" in driver_features
    for name, bit in FEATURE_BITS.items():
        assert offered[-1] & (1 << bit), f"QEMU did not offer {name}"
        if name in driver_features:
            assert accepted & (1 << bit), f"the driver declined {name}"
        else:
            assert not accepted & (1 << bit), f"the driver took {name}, which it does not ask for"
    queues = pio_writes(rig, VIRTIO_PCI_QUEUE_SEL)
    assert {0, 1} <= set(queues)                       # RX and TX (and the control queue)
    pfns = [p for p in pio_writes(rig, VIRTIO_PCI_QUEUE_PFN) if p]
    assert len(pfns) >= 2
    for pfn in pfns:                                   # every ring inside the memfd arena, never page 0
        assert 0 < pfn * 4096 < rig.memory.size
    assert rig.machine.errors == []


def test_mac_mtu_and_link(qemu_available, virtio_net_host):
    # not QEMU's default MAC: the driver must read this one from the device's config space
    with NetRig(virtio_net_host, mac="52:54:00:a7:3c:19") as rig:
        info = rig.host.info("eth0")
        assert info.mac == bytes.fromhex("525400a73c19")
        assert info.mtu == 1500 and not info.running
        rig.host.open("eth0")
        info = rig.host.info("eth0")
        assert info.running and info.link_up


def test_frames_both_ways(rig):
    rig.host.open("eth0")
    mac = bytes.fromhex(rig.mac.replace(":", ""))
    out = b"\xff" * 6 + mac + b"\x88\xb5" + bytes(range(46))
    assert rig.host.xmit(out) == 0
    assert rig.peer_recv() == out
    inbound = mac + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5" + b"porter-rx" + bytes(37)
    rig.peer_send(inbound)
    name, frame = rig.host.receive(timeout=5)
    assert (name, frame) == ("eth0", inbound)


def test_port_io_is_trapped(rig):
    stats = rig.host.stats()
    assert stats.portio_traps > 10 and stats.arena_in_use > 0


def test_malformed_messages_are_rejected_not_fatal(rig):
    rig.host.send_raw(b"not a porter message at all")
    rig.host.send_raw(P.MSG_HDR.pack(P.MSG_MAGIC, 9, P.Msg.INFO, 7, 0))      # wrong version
    rig.host.send_raw(P.encode(P.Msg.INFO, 8, b"eth0"))                         # name not padded
    with pytest.raises(DriverHostError, match="unknown message type"):
        rig.host._call(200)
    deadline = time.monotonic() + 5
    while len(rig.host.protocol_errors) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    text = "\n".join(rig.host.protocol_errors)
    assert "bad magic" in text and "unsupported protocol version" in text
    assert "interface name" in text
    assert rig.host.info("eth0").mtu == 1500           # still serving


def test_harness_disappearing_stops_the_host_cleanly(rig):
    host = rig.host
    host.ctl.shutdown(2)
    host.io.shutdown(2)
    assert host.proc.wait(10) == 3
    assert "the harness closed the control channel" in host.output()
    rig.host = None
    host.close()


def test_crashing_driver_host_is_reported(rig):
    host = rig.host
    os.kill(host.proc.pid, signal.SIGSEGV)      # a real fault, not port I/O: must not be swallowed
    with pytest.raises(DriverHostDied, match="killed by SIGSEGV"):
        for _ in range(50):
            host.info("eth0")
            time.sleep(0.1)
    assert "SIGSEGV" in host.output() or "portio" in host.output().lower()
    rig.host = None
    host.close()


def test_restart_against_the_same_device(rig):
    rig.host.open("eth0")
    rig.qemu.reset()
    rig.start_host()
    assert rig.host.ready_ifnames == ["eth0"]
    rig.host.open("eth0")
    assert rig.host.info("eth0").link_up
    # the new driver set the device up from scratch: frames flow both ways again
    mac = bytes.fromhex(rig.mac.replace(":", ""))
    out = b"\xff" * 6 + mac + b"\x88\xb5" + b"after-restart" + bytes(33)
    assert rig.host.xmit(out) == 0 and rig.peer_recv() == out
    inbound = mac + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5" + b"rx-after-restart" + bytes(30)
    rig.peer_send(inbound)
    assert rig.host.receive(timeout=5) == ("eth0", inbound)


def test_many_start_ups_in_a_row_never_hang(qemu_available, virtio_net_host):
    """The work-queue workaround: each start-up runs the DDE's workqueue set-up."""
    with NetRig(virtio_net_host) as rig:
        for _ in range(10):
            rig.qemu.reset()
            rig.start_host()
            rig.host.open("eth0")
            assert rig.host.info("eth0").running
