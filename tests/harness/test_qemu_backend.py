"""The qemu backend against Debian's real QEMU: PCI identity, TX/RX through a real virtio-net,
a real kernel answering ARP through tap, and no QEMU left behind on any path.

QEMU tests skip (one line) when qemu-system-x86_64 is absent, except with
CI=true, where they fail: CI must run them.
"""

from __future__ import annotations

import gc
import json
import mmap
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid

import pytest

from porter.harness.memory import GuestMemory
from porter.harness.qemu import (DEFAULT_MAC, DgramNetdev, QemuDevice, QemuStartError, TapNetdev)
from porter.harness.pci import PCI_DEVICE_ID, PCI_SUBSYSTEM_ID, PCI_VENDOR_ID, assign_io_bar, size_io_bar
from porter.harness.ring_driver import NetRingDriver
from porter.harness.virtio_net import VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_STATUS
from porter.harness.virtio_pci import (
    VIRTIO_ID_BLOCK, VIRTIO_ID_NET, VIRTIO_ID_RNG, VIRTIO_PCI_CONFIG, VIRTIO_PCI_DEVICE_BLK,
    VIRTIO_PCI_DEVICE_NET, VIRTIO_PCI_DEVICE_RNG, VIRTIO_PCI_HOST_FEATURES, VIRTIO_PCI_ISR_QUEUE, bit)
from porter.harness.vring import VringLayout
from porter.harness.xremote import (HEADER, Cmd, XRemoteClient, XRemoteClosed, XRemoteProtocolError,
                                    XRemoteTimeout)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IN_CI = os.environ.get("CI") == "true"
IO_BASE = 0xC000
MEMORY_SIZE = 16 << 20


def require(condition: bool, reason: str) -> None:
    """Skip with a one-line reason, except in CI, where a missing prerequisite is a failure."""
    if not condition:
        if IN_CI:
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def qemu_installed() -> None:
    require(shutil.which("qemu-system-x86_64") is not None,
            "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")


def qemu_children() -> list[int]:
    """QEMU processes (zombies included) whose parent is this test process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == os.getpid() and comm.startswith("qemu-system"):
            found.append(int(entry))
    return found


def processes_mentioning(marker: str) -> list[int]:
    """Processes whose command line contains ``marker`` (a QemuDevice's workdir)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def wait_gone(marker: str, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := processes_mentioning(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


# -- fixtures ---------------------------------------------------------------------

@pytest.fixture
def memory():
    with GuestMemory(MEMORY_SIZE) as mem:
        yield mem


@pytest.fixture
def irq():
    fds = (os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC), os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC))
    yield fds
    for fd in fds:
        os.close(fd)


@pytest.fixture
def peer():
    """The test's end of QEMU's dgram netdev: a bound UNIX datagram socket (short path, sun_path is 108 bytes)."""
    directory = tempfile.mkdtemp(prefix="porter-peer-")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(os.path.join(directory, "peer.sock"))
    sock.settimeout(5.0)
    yield sock
    sock.close()
    shutil.rmtree(directory, ignore_errors=True)


NET_VARIANTS = {
    # 2.6.32 virtio_net negotiates mergeable RX buffers: 12-byte header.
    "mergeable": ({}, bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS) | bit(VIRTIO_NET_F_MRG_RXBUF)),
    # Older drivers (and netdde's 2.6.29 headers) without it: 10-byte header.
    "plain": ({"mrg_rxbuf": "off", "csum": "off"}, bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS)),
}


@pytest.fixture(params=sorted(NET_VARIANTS))
def driver(request, qemu_installed, peer, memory, irq):
    options, features = NET_VARIANTS[request.param]
    with QemuDevice(netdev=DgramNetdev(peer.getsockname()), options=options) as dev:
        dev.sync_memory(memory)
        dev.set_irqfd(*irq)
        drv = NetRingDriver(dev, memory, io_base=IO_BASE, features=features,
                         irq_fd=irq[0], resample_fd=irq[1]).start()
        assert drv.has(VIRTIO_NET_F_MRG_RXBUF) == (request.param == "mergeable")
        yield drv
        drv.stop()


def frame(dst: bytes, src: bytes, length: int, ethertype: int = 0x88B5) -> bytes:
    """An Ethernet frame of ``length`` bytes with a recognisable payload (0x88b5: local experimental)."""
    head = dst + src + struct.pack("!H", ethertype)
    return head + bytes((i * 7 + length) & 0xFF for i in range(length - len(head)))


# -- wire protocol, without QEMU -----------------------------------------------------

@pytest.fixture
def fake_qemu():
    """Clients wired to a peer that answers the first request with given bytes, then hangs up."""
    made = []

    def make(reply: bytes):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

        def serve():
            theirs.recv(4096)
            theirs.sendall(reply)
            theirs.close()

        thread = threading.Thread(target=serve)
        thread.start()
        client = XRemoteClient(ours, timeout=5.0, peer_report=lambda: "QEMU said: fake trouble")
        made.append((client, thread))
        return client

    yield make
    for client, thread in made:
        thread.join()
        client.close()


def test_unexpected_reply_command_is_a_protocol_error(fake_qemu):
    client = fake_qemu(HEADER.pack(Cmd.PCI_CFGREAD, 0, 8) + bytes(8))
    with pytest.raises(XRemoteProtocolError, match="expected RET for PCI_CFGREAD, QEMU sent command 3") as e:
        client.cfg_read(0, 2)
    assert "fake trouble" in str(e.value)


def test_short_reply_and_closed_socket_are_reported(fake_qemu):
    client = fake_qemu(HEADER.pack(Cmd.RET, 0, 8) + bytes(3))
    with pytest.raises(XRemoteClosed, match="short read: the reply to BAR_READ ended after 19 of 24 bytes"):
        client.bar_read(IO_BASE, 1)
    # The stream is out of step now: every later call fails the same way, without touching the socket.
    with pytest.raises(XRemoteClosed, match="short read"):
        client.cfg_read(0, 4)

    client = fake_qemu(b"")
    with pytest.raises(XRemoteClosed, match="closed the x-remote socket instead of replying to PCI_CFGWRITE"):
        client.cfg_write(4, 5, 2)


def test_invalid_access_sizes_never_reach_qemu(fake_qemu):
    # QEMU asserts (aborts) on a config length other than 1, 2, 4.
    client = fake_qemu(HEADER.pack(Cmd.RET, 0, 8) + bytes(8))
    with pytest.raises(ValueError, match="1, 2 or 4"):
        client.cfg_read(0, 3)
    with pytest.raises(ValueError, match="1, 2, 4 or 8"):
        client.bar_write(IO_BASE, 0, 3)
    assert client.cfg_read(0, 4) == 0                 # the first request QEMU sees


# -- pure layout -------------------------------------------------------------------

def test_vring_layout_follows_the_legacy_spec():
    ring = VringLayout.at(0x10_0000, 256)
    assert ring.avail == 0x10_0000 + 16 * 256
    assert ring.used == 0x10_0000 + 8192          # 4096 + 518 bytes, rounded up to 4096
    assert ring.size == 8192 + 4096               # used: 6 + 8 * 256 bytes, rounded up
    assert ring.used_ring(257) == ring.used + 4 + 8
    with pytest.raises(ValueError):
        VringLayout.at(0x10_0800, 256)


def test_guest_memory_is_one_shared_memfd():
    with GuestMemory(1 << 20) as mem:
        mem.write(0x1234, b"porter")
        mem.pack("<HQ", 0x2000, 0xBEEF, 1 << 40)
        other = mmap.mmap(mem.fd, mem.size)        # what QEMU and the driver host map
        assert other[0x1234:0x123A] == b"porter"
        other[0x3000:0x3002] = b"ok"
        assert mem.read(0x3000, 2) == b"ok"
        assert mem.unpack("<HQ", 0x2000) == (0xBEEF, 1 << 40)
        other.close()
        with pytest.raises(IndexError, match="outside guest memory"):
            mem.read(mem.size - 2, 4)
    assert mem.closed


# -- QEMU: identity --------------------------------------------------------------------

@pytest.mark.qemu
def test_pci_identity_bar_and_mac(qemu_installed, peer):
    mac = "52:54:00:ab:cd:ef"
    with QemuDevice(netdev=DgramNetdev(peer.getsockname()), mac=mac) as dev:
        assert dev.cfg_read(PCI_VENDOR_ID, 2) == 0x1AF4
        assert dev.cfg_read(PCI_DEVICE_ID, 2) == VIRTIO_PCI_DEVICE_NET
        assert dev.cfg_read(PCI_SUBSYSTEM_ID, 2) == VIRTIO_ID_NET
        assert size_io_bar(dev) == 32
        assert assign_io_bar(dev, IO_BASE) == 32
        config_mac = bytes(dev.io_read(IO_BASE + VIRTIO_PCI_CONFIG + i, 1) for i in range(6))
        assert config_mac.hex(":") == mac
        assert dev.io_read(IO_BASE + VIRTIO_PCI_HOST_FEATURES, 4) & bit(VIRTIO_NET_F_MAC)
        # The last config bytes: QEMU only takes whole dwords there; the backend must not kill it.
        assert dev.cfg_read(0xFF, 1) == 0
        assert dev.proc.poll() is None


@pytest.mark.qemu
def test_default_mac_and_rng_and_blk_devices(qemu_installed, peer, tmp_path):
    with QemuDevice(netdev=DgramNetdev(peer.getsockname())) as dev:
        assign_io_bar(dev, IO_BASE)
        assert bytes(dev.io_read(IO_BASE + VIRTIO_PCI_CONFIG + i, 1) for i in range(6)).hex(":") == DEFAULT_MAC

    with QemuDevice("virtio-rng-pci") as dev:
        assert (dev.cfg_read(PCI_DEVICE_ID, 2), dev.cfg_read(PCI_SUBSYSTEM_ID, 2)) == (VIRTIO_PCI_DEVICE_RNG, VIRTIO_ID_RNG)
        assert size_io_bar(dev) == 32                 # 20 bytes of registers, no device config

    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    with QemuDevice("virtio-blk-pci", options={"drive": "disk0"},
                    extra_args=["-blockdev", f"driver=file,filename={disk},node-name=disk0"]) as dev:
        assert (dev.cfg_read(PCI_DEVICE_ID, 2), dev.cfg_read(PCI_SUBSYSTEM_ID, 2)) == (VIRTIO_PCI_DEVICE_BLK, VIRTIO_ID_BLOCK)
        assign_io_bar(dev, IO_BASE, 0)
        capacity = dev.io_read(IO_BASE + VIRTIO_PCI_CONFIG, 4) | dev.io_read(IO_BASE + VIRTIO_PCI_CONFIG + 4, 4) << 32
        assert capacity == (1 << 20) // 512           # virtio_blk_config.capacity, in sectors


# -- QEMU: frames ------------------------------------------------------------------------

@pytest.mark.qemu
def test_tx_frames_reach_the_peer_byte_identical(driver, peer):
    frames = [frame(b"\xff" * 6, driver.mac, 60), frame(b"\x02\x00\x00\x00\x00\x01", driver.mac, 1514)]
    assert driver.transmit(frames) == 2
    assert [peer.recv(4096) for _ in frames] == frames
    driver.flush_tx()


@pytest.mark.qemu
def test_rx_frame_lands_in_guest_memory_with_an_interrupt(driver, peer, memory):
    dev = driver.device
    sent = frame(driver.mac, b"\x02\x00\x00\x00\x00\x02", 1514)
    peer.sendto(sent, dev.netdev_path)
    isr = driver.wait_interrupt(5.0)
    assert isr is not None and isr & VIRTIO_PCI_ISR_QUEUE, f"no RX interrupt (ISR {isr})"
    [got] = driver.poll_rx()
    assert got.frame == sent
    assert memory.read(got.addr, len(sent)) == sent
    # Buffers go back to the device: many more frames than RX slots still arrive.
    for i in range(300):
        peer.sendto(frame(driver.mac, b"\x02\x00\x00\x00\x00\x02", 60 + i), dev.netdev_path)
        assert driver.receive(1)[0].frame == frame(driver.mac, b"\x02\x00\x00\x00\x00\x02", 60 + i)


@pytest.mark.qemu
def test_concurrent_callers_each_get_their_own_reply(qemu_installed):
    with QemuDevice("virtio-rng-pci") as dev:
        errors = []

        def hammer(offset, expected):
            try:
                for _ in range(200):
                    assert dev.cfg_read(offset, 2) == expected
            except BaseException as e:              # surfaced below
                errors.append(e)

        threads = [threading.Thread(target=hammer, args=a)
                   for a in [(PCI_VENDOR_ID, 0x1AF4), (PCI_DEVICE_ID, VIRTIO_PCI_DEVICE_RNG)] * 2]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors


# -- QEMU: tap and the kernel ------------------------------------------------------------

@pytest.fixture
def netns(request, qemu_installed):
    """A network namespace with tap0 at 192.0.2.1/24, up; deleted on every path."""
    require(os.geteuid() == 0 and shutil.which("ip") is not None and os.path.exists("/dev/net/tun"),
            "tap test needs root, iproute2 and /dev/net/tun")
    name = f"porter-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    request.addfinalizer(lambda: subprocess.run(["ip", "netns", "del", name], check=False))
    for cmd in (["tuntap", "add", "dev", "tap0", "mode", "tap"],
                ["addr", "add", "192.0.2.1/24", "dev", "tap0"],
                ["link", "set", "lo", "up"],
                ["link", "set", "tap0", "up"]):
        subprocess.run(["ip", "-n", name] + cmd, check=True)
    return name


@pytest.mark.qemu
def test_kernel_answers_arp_through_tap(netns, memory, irq):
    link = json.loads(subprocess.run(["ip", "-n", netns, "-j", "link", "show", "tap0"], check=True,
                                     capture_output=True, text=True).stdout)
    kernel_mac = bytes.fromhex(link[0]["address"].replace(":", ""))
    with QemuDevice(netdev=TapNetdev("tap0"), netns=netns) as dev:
        dev.sync_memory(memory)
        dev.set_irqfd(*irq)
        drv = NetRingDriver(dev, memory, io_base=IO_BASE, irq_fd=irq[0], resample_fd=irq[1]).start()
        ours, asked = bytes([192, 0, 2, 2]), bytes([192, 0, 2, 1])
        request = (b"\xff" * 6 + drv.mac + b"\x08\x06" + bytes.fromhex("0001080006040001")
                   + drv.mac + ours + bytes(6) + asked).ljust(60, b"\0")
        drv.transmit([request])
        deadline = time.monotonic() + 5.0
        reply = None
        while reply is None and time.monotonic() < deadline:
            # The kernel also sends IPv6 chatter on a fresh link; look for the ARP reply.
            for rx in drv.receive(1, timeout=deadline - time.monotonic()):
                f = rx.frame
                if f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x02":
                    reply = f
        assert reply is not None
        assert reply[0:6] == drv.mac                       # to us
        assert reply[22:28] == kernel_mac                  # sender hardware address: the kernel's tap0
        assert reply[28:32] == asked and reply[38:42] == ours
        drv.stop()


# -- QEMU: failures and cleanup ------------------------------------------------------------

@pytest.mark.qemu
def test_qemu_rejecting_an_option_reports_its_own_error(qemu_installed):
    with pytest.raises(QemuStartError) as e:
        QemuDevice(options={"no-such-option": "1"})
    assert "Property 'virtio-net-pci.no-such-option' not found" in str(e.value)
    assert "exited while starting (exited with status 1)" in str(e.value)
    assert qemu_children() == []


@pytest.mark.qemu
def test_qemu_dying_midway_is_a_clear_error(qemu_installed):
    with QemuDevice("virtio-rng-pci") as dev:
        # Beyond 256-byte config space: QEMU reports the bad address and shuts down.
        with pytest.raises(XRemoteProtocolError) as e:
            dev.client.cfg_read(0x100, 4)
        assert "Bad address for PCI config read" in str(e.value)
        assert f"QEMU (pid {dev.pid}) exited with status" in str(e.value)
    with QemuDevice("virtio-rng-pci") as dev:
        os.kill(dev.pid, signal.SIGKILL)
        with pytest.raises(XRemoteClosed, match="was killed by SIGKILL"):
            dev.cfg_read(0, 2)
    assert qemu_children() == []


@pytest.mark.qemu
def test_stuck_qemu_times_out_and_is_killed(qemu_installed):
    dev = QemuDevice("virtio-rng-pci", reply_timeout=0.5)
    try:
        os.kill(dev.pid, signal.SIGSTOP)             # alive, deaf to the socket and to SIGTERM
        with pytest.raises(XRemoteTimeout, match=rf"no reply to PCI_CFGREAD within 0.5s\nQEMU \(pid {dev.pid}\) is running"):
            dev.cfg_read(0, 2)
    finally:
        dev.close()
    assert dev.proc.returncode == -signal.SIGKILL
    assert qemu_children() == []


@pytest.mark.qemu
def test_close_leaves_no_process_and_no_files(qemu_installed):
    dev = QemuDevice("virtio-rng-pci")
    pid, workdir = dev.pid, dev.workdir
    assert processes_mentioning(workdir) == [pid]
    dev.close()
    dev.close()
    assert dev.proc.returncode == 0                      # it shut down on socket EOF, no signal needed
    assert not os.path.exists(f"/proc/{pid}") and not os.path.exists(workdir)
    assert qemu_children() == []


@pytest.mark.qemu
def test_garbage_collected_device_leaves_no_process(qemu_installed):
    dev = QemuDevice("virtio-rng-pci")
    workdir = dev.workdir
    del dev
    gc.collect()
    assert processes_mentioning(workdir) == [] and not os.path.exists(workdir)
    assert qemu_children() == []


HARNESS_SCRIPT = textwrap.dedent("""
    import sys, time
    from porter.harness.qemu import QemuDevice
    dev = QemuDevice("virtio-rng-pci")
    print(dev.workdir, flush=True)
    sys.stdin.readline()              # the test has seen QEMU running
    if sys.argv[1] == "raise":
        raise RuntimeError("test failed half-way")
    time.sleep(60)
""")


@pytest.mark.qemu
@pytest.mark.parametrize("how", ["raise", "sigkill"])
def test_a_dying_harness_leaves_no_qemu(qemu_installed, how):
    """An exception escaping (atexit finalizer) or the harness killed outright (QEMU sees EOF)."""
    proc = subprocess.Popen([sys.executable, "-c", HARNESS_SCRIPT, how], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workdir = ""
    try:
        workdir = proc.stdout.readline().strip()
        assert workdir.startswith("/porter-qemu-", len(tempfile.gettempdir())), proc.stderr.read()
        assert len(processes_mentioning(workdir)) == 1
        if how == "sigkill":
            proc.kill()
        _, stderr = proc.communicate("go\n", timeout=30)
        if how == "raise":
            assert proc.returncode == 1 and "test failed half-way" in stderr
            assert not os.path.exists(workdir)
        assert wait_gone(workdir) == []
    finally:
        proc.kill()
        proc.wait()
        if workdir:
            # Only a SIGKILLed harness leaves its (by then socket-less) workdir behind.
            shutil.rmtree(workdir, ignore_errors=True)
