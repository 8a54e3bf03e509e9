"""The sim backend: a Python legacy virtio-net-pci, driven by the harness's NetRingDriver and by
hand-built rings (for chains NetRingDriver never makes: long, indirect, hostile). No QEMU needed."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import tempfile
import threading
import time
from typing import Optional

import pytest

from porter.harness.machine import Machine
from porter.harness.memory import GuestMemory
from porter.harness.pci import (
    PCI_BASE_ADDRESS_0, PCI_CLASS_DEVICE, PCI_DEVICE_ID, PCI_INTERRUPT_LINE, PCI_INTERRUPT_PIN,
    PCI_SUBSYSTEM_ID, PCI_VENDOR_ID, assign_io_bar, size_io_bar)
from porter.harness.ring_driver import DeviceError, NetRingDriver
from porter.harness.sim_net import DEFAULT_FEATURES, CtrlCommand, SimNetDevice
from porter.harness.virtio_net import (
    VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI,
    VIRTIO_NET_CTRL_RX_PROMISC, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_ERR, VIRTIO_NET_F_CSUM,
    VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF,
    VIRTIO_NET_F_STATUS, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_LEN, VIRTIO_NET_HDR_MRG_RXBUF_LEN,
    VIRTIO_NET_OK)
from porter.harness.virtio_pci import (
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED, VIRTIO_ID_NET, VIRTIO_PCI_CONFIG, VIRTIO_PCI_DEVICE_NET,
    VIRTIO_PCI_GUEST_FEATURES, VIRTIO_PCI_HOST_FEATURES, VIRTIO_PCI_ISR, VIRTIO_PCI_ISR_CONFIG,
    VIRTIO_PCI_ISR_QUEUE, VIRTIO_PCI_QUEUE_ADDR_SHIFT, VIRTIO_PCI_QUEUE_NOTIFY, VIRTIO_PCI_QUEUE_NUM,
    VIRTIO_PCI_QUEUE_PFN, VIRTIO_PCI_QUEUE_SEL, VIRTIO_PCI_STATUS, VIRTIO_PCI_VENDOR,
    VIRTIO_RING_F_INDIRECT_DESC, bit)
from porter.harness.vring import (
    VRING_DESC, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_USED_ELEM,
    VringLayout)

MEMORY_SIZE = 16 << 20
IO_BASE = 0xC000
MAC = "52:54:00:ab:cd:ef"
OTHER = b"\x02\x00\x00\x00\x00\x02"
PLAIN = bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS)
MERGEABLE = PLAIN | bit(VIRTIO_NET_F_MRG_RXBUF)
RX, TX, CTRL = 0, 1, 2


def frame(dst: bytes, src: bytes, length: int, ethertype: int = 0x88B5) -> bytes:
    """An Ethernet frame of ``length`` bytes with a recognisable payload (0x88b5: local experimental)."""
    head = dst + src + struct.pack("!H", ethertype)
    return head + bytes((i * 7 + length) & 0xFF for i in range(length - len(head)))


def sim_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sim-")]


@pytest.fixture
def memory():
    with GuestMemory(MEMORY_SIZE) as mem:
        yield mem


@pytest.fixture
def peer():
    """The test's end of the sim's wire: a bound UNIX datagram socket (short path: sun_path is 108 bytes)."""
    directory = tempfile.mkdtemp(prefix="porter-peer-")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(os.path.join(directory, "peer.sock"))
    sock.settimeout(5.0)
    yield sock
    sock.close()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def make_sim(peer, memory):
    """SimNetDevice(...) wired to ``peer`` and ``memory``; closed (and proven threadless) afterwards."""
    made = []

    def make(**kwargs) -> SimNetDevice:
        sim = SimNetDevice(peer.getsockname(), mac=MAC, **kwargs)
        made.append(sim)
        sim.sync_memory(memory)
        return sim

    yield make
    for sim in made:
        sim.close()
    assert not sim_threads()


@pytest.fixture
def rig(make_sim, memory):
    """Build (sim, NetRingDriver) on a Machine: BAR, interrupt line and irqfds as the driver host gets them."""
    machines = []

    def build(features: int = PLAIN, start: bool = True, **sim_kwargs) -> tuple[SimNetDevice, NetRingDriver]:
        sim = make_sim(**sim_kwargs)
        machine = Machine(memory)
        machines.append(machine)
        slot = machine.attach(sim)
        driver = NetRingDriver(sim, memory, io_base=slot.io_base, features=features,
                            irq_fd=slot.irq_fd, resample_fd=slot.resample_fd)
        return sim, driver.start() if start else driver

    yield build
    for machine in machines:
        machine.close()


class HandDriver:
    """Register-level driver with hand-built rings: chains of any shape, hostile ones included."""

    def __init__(self, sim: SimNetDevice, memory: GuestMemory, features: int,
                 rings_at: int = 0x40_0000, data_at: int = 0x80_0000) -> None:
        self.sim, self.memory = sim, memory
        assign_io_bar(sim, IO_BASE)
        self.write(VIRTIO_PCI_STATUS, 0, 1)
        self.write(VIRTIO_PCI_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, 1)
        self.features = self.read(VIRTIO_PCI_HOST_FEATURES, 4) & features
        self.write(VIRTIO_PCI_GUEST_FEATURES, self.features, 4)
        self.header_len = VIRTIO_NET_HDR_MRG_RXBUF_LEN if self.features & bit(VIRTIO_NET_F_MRG_RXBUF) \
            else VIRTIO_NET_HDR_LEN
        self.rings: dict[int, VringLayout] = {}
        at = rings_at
        for q in (RX, TX, CTRL):
            self.write(VIRTIO_PCI_QUEUE_SEL, q, 2)
            num = self.read(VIRTIO_PCI_QUEUE_NUM, 2)
            if num:
                self.rings[q] = layout = VringLayout.at(at, num)
                memory.fill(at, layout.size)
                self.write(VIRTIO_PCI_QUEUE_PFN, at >> VIRTIO_PCI_QUEUE_ADDR_SHIFT, 4)
                at += layout.size
        self.next_desc = {q: 0 for q in self.rings}
        self.avail = {q: 0 for q in self.rings}
        self.seen_used = {q: 0 for q in self.rings}
        self.data_at = data_at
        self.write(VIRTIO_PCI_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER
                   | VIRTIO_CONFIG_S_DRIVER_OK, 1)

    def read(self, offset: int, size: int) -> int:
        return self.sim.io_read(IO_BASE + offset, size)

    def write(self, offset: int, value: int, size: int) -> None:
        self.sim.io_write(IO_BASE + offset, value, size)

    def buffer(self, data: bytes | int) -> tuple[int, int]:
        """Guest memory for ``data`` (bytes to place, or a size to reserve): (addr, len)."""
        length = data if isinstance(data, int) else len(data)
        addr = self.data_at
        self.data_at += (length + 63) & ~63
        if not isinstance(data, int):
            self.memory.write(addr, data)
        return addr, length

    def descriptors(self, q: int, descs: list[tuple[int, int, int, int]], table: Optional[int] = None) -> int:
        """Store raw (addr, len, flags, next) descriptors from the next free ring slot (or in ``table``)."""
        base = table if table is not None else self.rings[q].desc + VRING_DESC.size * self.next_desc[q]
        for i, desc in enumerate(descs):
            self.memory.pack(VRING_DESC, base + VRING_DESC.size * i, *desc)
        first = self.next_desc[q]
        if table is None:
            self.next_desc[q] += len(descs)
        return first

    def chain(self, q: int, out: list[tuple[int, int]] = (), into: list[tuple[int, int]] = (),
              indirect: bool = False) -> int:
        """Post a well-formed chain: ``out`` buffers device-readable, then ``into`` device-writable."""
        bufs = [(a, n, 0) for a, n in out] + [(a, n, VRING_DESC_F_WRITE) for a, n in into]
        if indirect:
            table, _ = self.buffer(VRING_DESC.size * len(bufs))
            self.descriptors(q, [(a, n, f | (VRING_DESC_F_NEXT if i + 1 < len(bufs) else 0), i + 1)
                                 for i, (a, n, f) in enumerate(bufs)], table=table)
            head = self.descriptors(q, [(table, VRING_DESC.size * len(bufs), VRING_DESC_F_INDIRECT, 0)])
        else:
            first = self.next_desc[q]
            head = self.descriptors(q, [(a, n, f | (VRING_DESC_F_NEXT if i + 1 < len(bufs) else 0),
                                         first + i + 1) for i, (a, n, f) in enumerate(bufs)])
        self.offer(q, head)
        return head

    def offer(self, q: int, head: int, kick: bool = True) -> None:
        layout = self.rings[q]
        self.memory.pack("<H", layout.avail_ring(self.avail[q]), head)
        self.avail[q] = (self.avail[q] + 1) & 0xFFFF
        self.memory.pack("<H", layout.avail_idx, self.avail[q])
        if kick:
            self.write(VIRTIO_PCI_QUEUE_NOTIFY, q, 2)

    def used_idx(self, q: int) -> int:
        return self.memory.unpack("<H", self.rings[q].used_idx)[0]

    def wait_used(self, q: int, count: int = 1, timeout: float = 5.0) -> list[tuple[int, int]]:
        """The next ``count`` used entries (id, len) of queue ``q``."""
        deadline = time.monotonic() + timeout
        while (self.used_idx(q) - self.seen_used[q]) & 0xFFFF < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"queue {q}: {count} used entries not there within {timeout}s "
                                   f"(device errors: {self.sim.errors})")
            time.sleep(0.001)
        got = [self.memory.unpack(VRING_USED_ELEM, self.rings[q].used_ring(self.seen_used[q] + i))
               for i in range(count)]
        self.seen_used[q] = (self.seen_used[q] + count) & 0xFFFF
        return got


def wait_for(condition, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        time.sleep(0.001)


# -- identity ------------------------------------------------------------------------------

def test_pci_identity_bar_sizing_and_mac(make_sim):
    sim = make_sim()
    assert sim.cfg_read(PCI_VENDOR_ID, 2) == VIRTIO_PCI_VENDOR
    assert sim.cfg_read(PCI_DEVICE_ID, 2) == VIRTIO_PCI_DEVICE_NET
    assert sim.cfg_read(PCI_SUBSYSTEM_ID, 2) == VIRTIO_ID_NET
    assert sim.cfg_read(PCI_CLASS_DEVICE, 2) == 0x0200             # network, Ethernet
    assert sim.cfg_read(PCI_INTERRUPT_PIN, 1) == 1                 # INTA
    assert size_io_bar(sim) == 32
    with pytest.raises(ValueError, match="not an I/O BAR"):
        size_io_bar(sim, 1)                                        # only BAR0 exists
    assert sim.io_read(IO_BASE, 4) == 0xFFFF_FFFF                  # nothing decoded before assignment
    assert assign_io_bar(sim, IO_BASE) == 32
    assert sim.cfg_read(PCI_BASE_ADDRESS_0, 4) == IO_BASE | 1
    assert bytes(sim.io_read(IO_BASE + VIRTIO_PCI_CONFIG + i, 1) for i in range(6)).hex(":") == MAC
    assert sim.io_read(IO_BASE + VIRTIO_PCI_CONFIG + 6, 2) == 1    # link up
    assert sim.io_read(IO_BASE + VIRTIO_PCI_HOST_FEATURES, 4) == DEFAULT_FEATURES
    assert DEFAULT_FEATURES & bit(VIRTIO_RING_F_INDIRECT_DESC)
    assert sim.io_read(IO_BASE + 32, 1) == 0xFF                    # past the 32-byte BAR
    sim.cfg_write(PCI_INTERRUPT_LINE, 11, 1)
    assert sim.cfg_read(PCI_INTERRUPT_LINE, 1) == 11
    sim.cfg_write(PCI_VENDOR_ID, 0x1234, 2)                        # read-only
    assert sim.cfg_read(PCI_VENDOR_ID, 2) == VIRTIO_PCI_VENDOR
    with pytest.raises(ValueError):
        sim.cfg_read(0xFE, 4)
    with pytest.raises(ValueError):
        sim.io_read(IO_BASE, 3)


def test_constructor_refuses_what_it_cannot_model(peer):
    with pytest.raises(ValueError, match="cannot offer"):
        SimNetDevice(peer.getsockname(), features=bit(11))          # HOST_TSO4: no segmentation here
    with pytest.raises(TypeError, match="unknown fault"):
        SimNetDevice(peer.getsockname(), lose_frames=True)
    with pytest.raises(ValueError, match="MAC"):
        SimNetDevice(peer.getsockname(), mac="52:54:00")
    assert not sim_threads()


def test_machine_routes_ports_and_config_to_the_sim(make_sim, memory):
    sim = make_sim()
    machine = Machine(memory, trace=[])
    try:
        slot = machine.attach(sim)
        assert (slot.io_base, slot.io_size, slot.irq) == (0xC000, 32, 10)
        assert machine.cfg_read(0, slot.slot, 0, PCI_INTERRUPT_LINE, 1) == 10
        assert machine.pio_read(slot.io_base + VIRTIO_PCI_HOST_FEATURES, 4) == DEFAULT_FEATURES
        assert machine.pio_read(slot.io_base + VIRTIO_PCI_CONFIG, 1) == 0x52
        assert not machine.errors
    finally:
        machine.close()


# -- frames through NetRingDriver --------------------------------------------------------------

@pytest.mark.parametrize("features", [MERGEABLE, PLAIN], ids=["mergeable", "plain"])
def test_tx_frames_reach_the_peer_byte_identical(rig, peer, features):
    sim, driver = rig(features)
    assert driver.mac.hex(":") == MAC and driver.link_up
    frames = [frame(b"\xff" * 6, driver.mac, 60), frame(OTHER, driver.mac, 1514)]
    assert driver.transmit(frames) == 2
    assert [peer.recv(4096) for _ in frames] == frames
    driver.flush_tx()
    assert (sim.frames_tx, sim.errors) == (2, [])
    assert sim.notifies >= 2                                   # the RX kick at start, one TX kick


@pytest.mark.parametrize("features, header_len", [(MERGEABLE, 12), (PLAIN, 10)], ids=["mergeable", "plain"])
def test_rx_frame_lands_in_guest_memory_with_an_interrupt(rig, peer, memory, features, header_len):
    sim, driver = rig(features)
    sent = frame(driver.mac, OTHER, 1514)
    peer.sendto(sent, sim.netdev_path)
    isr = driver.wait_interrupt(5.0)
    assert isr is not None and isr & VIRTIO_PCI_ISR_QUEUE, f"no RX interrupt (ISR {isr})"
    [got] = driver.poll_rx()
    assert got.frame == sent and memory.read(got.addr, len(sent)) == sent
    # Mergeable on: virtio_net_hdr_mrg_rxbuf, num_buffers 1; off: the 10-byte header only.
    assert len(got.header) == header_len
    assert got.header == bytes(10) + (b"\x01\x00" if header_len == 12 else b"")
    assert sim.frames_rx == 1 and sim.interrupts >= 1 and sim.errors == []


def test_rx_waits_for_driver_ok_and_holds_frames_sent_early(rig, peer):
    sim, driver = rig(PLAIN, start=False)
    early = frame(b"\xff" * 6, OTHER, 100)
    peer.sendto(early, sim.netdev_path)
    time.sleep(0.05)
    assert sim.frames_rx == 0                                  # no rings, no DRIVER_OK: nowhere to put it
    driver.start()
    assert driver.receive(1)[0].frame == early


def test_2000_frames_each_way_without_loss(rig, peer):
    sim, driver = rig(MERGEABLE)
    count = 2000
    out = [frame(OTHER, driver.mac, 60 + i % 1455) for i in range(count)]
    inbound = [frame(driver.mac, OTHER, 1514 - i % 1455) for i in range(count)]
    heard: list[bytes] = []
    failures: list[BaseException] = []

    def listen() -> None:           # the peer's queue holds only max_dgram_qlen frames: keep reading
        try:
            while len(heard) < count:
                heard.append(peer.recv(4096))
        except BaseException as e:
            failures.append(e)

    def talk() -> None:             # blocks while the sim's socket is full: the sim applies backpressure
        try:
            sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sender.settimeout(10.0)
            with sender:
                for f in inbound:
                    sender.sendto(f, sim.netdev_path)
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=listen), threading.Thread(target=talk)]
    for t in threads:
        t.start()
    assert driver.transmit(out, timeout=20.0) == count
    got = [rx.frame for rx in driver.receive(count, timeout=30.0)]
    driver.flush_tx(timeout=20.0)
    for t in threads:
        t.join(30.0)
    assert not failures
    assert heard == out
    assert got == inbound
    assert (sim.frames_tx, sim.frames_rx, sim.tx_dropped, sim.rx_dropped) == (count, count, 0, 0)
    assert sim.errors == []


# -- chains NetRingDriver never builds ----------------------------------------------------------

@pytest.mark.parametrize("features", [MERGEABLE, PLAIN], ids=["mergeable", "plain"])
def test_tx_chains_any_layout_and_indirect(make_sim, memory, peer, features):
    sim = make_sim()
    hand = HandDriver(sim, memory, features | bit(VIRTIO_RING_F_INDIRECT_DESC))
    header = bytes(hand.header_len)
    sent = frame(OTHER, sim.mac, 1514)
    # Header in its own descriptor, the frame over three more.
    hand.chain(TX, out=[hand.buffer(header), hand.buffer(sent[:100]), hand.buffer(sent[100:1000]),
                        hand.buffer(sent[1000:])])
    assert peer.recv(4096) == sent
    # Header and frame merged in one descriptor.
    hand.chain(TX, out=[hand.buffer(header + sent[:60])])
    assert peer.recv(4096) == sent[:60]
    # The same as an indirect table.
    hand.chain(TX, out=[hand.buffer(header), hand.buffer(sent[:700]), hand.buffer(sent[700:])], indirect=True)
    assert peer.recv(4096) == sent
    assert [n for _, n in hand.wait_used(TX, 3)] == [0, 0, 0]
    assert sim.errors == []


def test_tx_checksum_offload_fills_in_the_checksum(make_sim, memory, peer):
    sim = make_sim(features=DEFAULT_FEATURES | bit(VIRTIO_NET_F_CSUM))
    hand = HandDriver(sim, memory, PLAIN | bit(VIRTIO_NET_F_CSUM))
    payload = frame(OTHER, sim.mac, 101)                       # odd length: the sum pads a zero byte
    header = struct.pack("<BBHHHH", VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 14, 6)
    hand.chain(TX, out=[hand.buffer(header), hand.buffer(payload)])
    got = peer.recv(4096)
    # The field held the pseudo-header sum; a receiver adds that sum back and must get all ones.
    pseudo = struct.unpack_from("!H", payload, 20)[0]
    region = got[14:] + b"\0"
    total = pseudo + sum(struct.unpack(f"!{len(region) // 2}H", region))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    assert total == 0xFFFF, "checksum over csum_start.. must verify"
    assert got[:20] == payload[:20] and got[22:] == payload[22:]


def test_rx_big_packet_chain_scatters_one_frame(make_sim, memory, peer):
    sim = make_sim(features=PLAIN)
    hand = HandDriver(sim, memory, PLAIN)
    # As 2.6.32's big_packets posts: a 10-byte header descriptor, then page-sized fragments.
    parts = [hand.buffer(VIRTIO_NET_HDR_LEN)] + [hand.buffer(1000) for _ in range(4)]
    head = hand.chain(RX, into=parts)
    sent = frame(sim.mac, OTHER, 3000)
    peer.sendto(sent, sim.netdev_path)
    [(used_id, length)] = hand.wait_used(RX)
    assert (used_id, length) == (head, VIRTIO_NET_HDR_LEN + 3000)
    assert b"".join(memory.read(a, n) for a, n in parts) == bytes(10) + sent + bytes(4010 - 3010)
    # A frame the posted chain cannot hold is dropped (as QEMU does); the buffer stays for the next one.
    head = hand.chain(RX, into=[hand.buffer(VIRTIO_NET_HDR_LEN), hand.buffer(100)])
    peer.sendto(frame(sim.mac, OTHER, 5000), sim.netdev_path)
    wait_for(lambda: sim.rx_dropped == 1, what="the oversized frame dropped")
    peer.sendto(frame(sim.mac, OTHER, 64), sim.netdev_path)
    assert hand.wait_used(RX) == [(head, VIRTIO_NET_HDR_LEN + 64)]
    assert sim.errors == []


def test_rx_mergeable_buffers_fill_num_buffers(make_sim, memory, peer):
    sim = make_sim()
    hand = HandDriver(sim, memory, MERGEABLE)
    bufs = [hand.buffer(512) for _ in range(4)]
    heads = [hand.chain(RX, into=[b]) for b in bufs]
    sent = frame(sim.mac, OTHER, 1514)
    peer.sendto(sent, sim.netdev_path)
    used = hand.wait_used(RX, 3)
    assert used == [(heads[0], 512), (heads[1], 512), (heads[2], 1526 - 1024)]
    data = b"".join(memory.read(a, n) for (a, _), (_, n) in zip(bufs, used))
    assert data[:12] == bytes(10) + struct.pack("<H", 3)        # num_buffers
    assert data[12:] == sent
    # A frame larger than what is posted waits for more buffers instead of being cut.
    peer.sendto(frame(sim.mac, OTHER, 1000), sim.netdev_path)
    time.sleep(0.05)
    assert hand.used_idx(RX) == 3
    hand.chain(RX, into=[hand.buffer(2048)])
    assert [n for _, n in hand.wait_used(RX, 2)] == [512, 1012 - 512]


def test_control_queue_acks_records_and_filters(make_sim, memory, peer):
    sim = make_sim()
    hand = HandDriver(sim, memory, MERGEABLE | bit(VIRTIO_NET_F_CTRL_VQ) | bit(VIRTIO_NET_F_CTRL_RX))
    multicast = b"\x01\x00\x5e\x00\x00\x01"

    def command(cls: int, cmd: int, *data: bytes) -> int:
        ack_at, _ = hand.buffer(b"\xff")
        hand.chain(CTRL, out=[hand.buffer(bytes([cls, cmd]))] + [hand.buffer(d) for d in data],
                   into=[(ack_at, 1)])
        [(_, length)] = hand.wait_used(CTRL)
        assert length == 1
        return memory.read(ack_at, 1)[0]

    assert command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, b"\x00") == VIRTIO_NET_OK
    assert command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, b"\x01") == VIRTIO_NET_OK
    tables = (struct.pack("<I", 0), struct.pack("<I", 1) + multicast)  # as 2.6.32 sends them: two sg entries
    assert command(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, *tables) == VIRTIO_NET_OK
    assert command(VIRTIO_NET_CTRL_VLAN, 0, b"\x05\x00") == VIRTIO_NET_ERR   # CTRL_VLAN not negotiated
    assert command(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, b"\x01") == VIRTIO_NET_ERR
    assert sim.ctrl_commands[:3] == [
        CtrlCommand(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, b"\x00", VIRTIO_NET_OK),
        CtrlCommand(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, b"\x01", VIRTIO_NET_OK),
        CtrlCommand(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, b"".join(tables), VIRTIO_NET_OK)]
    assert (sim.rx_filter.promisc, sim.rx_filter.allmulti, sim.rx_filter.multicast) == (False, True, [multicast])
    # Promiscuous off: a frame for another station is filtered, ours and broadcast pass.
    for i in range(3):
        hand.chain(RX, into=[hand.buffer(2048)])
    peer.sendto(frame(OTHER, OTHER, 60), sim.netdev_path)
    peer.sendto(frame(sim.mac, OTHER, 61), sim.netdev_path)
    peer.sendto(frame(b"\xff" * 6, OTHER, 62), sim.netdev_path)
    assert [n for _, n in hand.wait_used(RX, 2)] == [12 + 61, 12 + 62]
    assert sim.rx_filtered == 1 and sim.errors == []


# -- hostile rings -------------------------------------------------------------------------

HOSTILE = {
    # name: (raw descriptors for the TX ring from slot 0, what the error must say)
    "outside-memory": ([(MEMORY_SIZE - 10, 100, 0, 0)], ["descriptor 0 ", f"addr {MEMORY_SIZE - 10:#x}",
                                                          "len 100", "outside guest memory"]),
    "loop": ([(0x90_0000, 10, VRING_DESC_F_NEXT, 1), (0x90_0000, 10, VRING_DESC_F_NEXT, 0)],
             ["loops"]),
    "next-beyond-ring": ([(0x90_0000, 10, VRING_DESC_F_NEXT, 300)], ["descriptor 0 ", "next 300"]),
    "readable-after-writable": ([(0x90_0000, 10, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1),
                                 (0x90_0000, 60, 0, 0)], ["descriptor 1 ", "readable buffer after"]),
    "indirect-bad-length": ([(0x90_0000, 20, VRING_DESC_F_INDIRECT, 0)], ["descriptor 0 ", "indirect table"]),
    "indirect-not-negotiated": ([(0x90_0000, 32, VRING_DESC_F_INDIRECT, 0)], ["not negotiated"]),
    "needs-csum-without-csum": ([(0x90_0000, 70, 0, 0)], ["NEEDS_CSUM"]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_descriptors_are_device_errors_and_the_sim_keeps_running(make_sim, memory, peer, case):
    descs, words = HOSTILE[case]
    sim = make_sim()
    features = PLAIN | (bit(VIRTIO_RING_F_INDIRECT_DESC) if case != "indirect-not-negotiated" else 0)
    hand = HandDriver(sim, memory, features)
    memory.write(0x90_0000, bytes([VIRTIO_NET_HDR_F_NEEDS_CSUM]) + bytes(69))
    hand.descriptors(TX, descs)
    hand.offer(TX, 0)
    wait_for(lambda: sim.errors, what=f"a device error for {case}")
    [error] = sim.errors
    assert error.startswith("queue 1 (tx)")
    for word in words:
        assert word in error
    assert sim.queue_broken(TX) == error
    # The queue stays stopped; the worker and the other queues go on.
    hand.chain(TX, out=[hand.buffer(bytes(10) + frame(OTHER, sim.mac, 60))])
    head = hand.chain(RX, into=[hand.buffer(2048)])
    peer.sendto(frame(sim.mac, OTHER, 60), sim.netdev_path)
    assert hand.wait_used(RX) == [(head, 70)]
    assert sim.worker_alive and hand.used_idx(TX) == 0 and sim.frames_tx == 0
    assert len(sim.errors) == 1


@pytest.mark.parametrize("case", ["head-beyond-ring", "avail-index-jump", "ring-outside-memory"])
def test_hostile_rings_are_device_errors(make_sim, memory, case):
    sim = make_sim()
    hand = HandDriver(sim, memory, PLAIN)
    layout = hand.rings[TX]
    if case == "head-beyond-ring":
        hand.offer(TX, 999)
        expected = "names descriptor 999"
    elif case == "avail-index-jump":
        memory.pack("<H", layout.avail_idx, 1000)
        hand.write(VIRTIO_PCI_QUEUE_NOTIFY, TX, 2)
        expected = "avail index moved from 0 to 1000"
    else:
        hand.write(VIRTIO_PCI_QUEUE_SEL, TX, 2)
        hand.write(VIRTIO_PCI_QUEUE_PFN, MEMORY_SIZE >> VIRTIO_PCI_QUEUE_ADDR_SHIFT, 4)
        hand.write(VIRTIO_PCI_QUEUE_NOTIFY, TX, 2)
        expected = "outside guest memory"
    wait_for(lambda: sim.errors, what=f"a device error for {case}")
    assert sim.errors[0].startswith("queue 1 (tx)") and expected in sim.errors[0]
    assert sim.worker_alive


def test_descriptor_outside_memory_under_ring_driver(rig, peer, memory):
    sim, driver = rig(PLAIN)
    # Corrupt the data descriptor of TX slot 0 (descriptor 1) the way a buggy driver would.
    desc = driver.tx.layout.desc + VRING_DESC.size * 1
    memory.pack("<Q", desc, MEMORY_SIZE + 0x1000)
    driver.transmit([frame(OTHER, driver.mac, 60)])
    with pytest.raises(TimeoutError):
        driver.flush_tx(timeout=0.3)
    [error] = sim.errors
    assert "queue 1 (tx): descriptor 1 " in error and f"addr {MEMORY_SIZE + 0x1000:#x} len 60" in error
    sent = frame(driver.mac, OTHER, 200)
    peer.sendto(sent, sim.netdev_path)
    assert driver.receive(1)[0].frame == sent                  # RX still served


# -- misbehaviour switches -----------------------------------------------------------------

@pytest.mark.parametrize("fault, direction, message", [
    ({"used_idx_jump": 1000}, "tx", "used index jumped"),
    ({"bad_used_id": True}, "tx", "not the head of a posted chain"),
    ({"bad_used_id": True}, "rx", "not the head of a posted chain"),
    ({"oversize_len": True}, "rx", "does not fit"),
])
def test_faults_make_ring_driver_raise_device_error(rig, peer, fault, direction, message):
    sim, driver = rig(MERGEABLE, **fault)
    with pytest.raises(DeviceError, match=message):
        if direction == "tx":
            driver.transmit([frame(OTHER, driver.mac, 60)])
            driver.flush_tx(timeout=5.0)
        else:
            peer.sendto(frame(driver.mac, OTHER, 60), sim.netdev_path)
            driver.receive(1, timeout=5.0)


def test_faults_can_be_switched_at_run_time(rig, peer):
    sim, driver = rig(PLAIN)
    driver.transmit([frame(OTHER, driver.mac, 60)])
    driver.flush_tx()
    sim.faults.bad_used_id = True
    driver.transmit([frame(OTHER, driver.mac, 60)])
    with pytest.raises(DeviceError):
        driver.flush_tx()


def test_garbage_config_returns_junk(rig):
    sim, driver = rig(PLAIN, garbage_config=True)
    first, second = driver.mac, driver.mac
    assert first != sim.mac and first != second
    sim.faults.garbage_config = False
    assert driver.mac == sim.mac


def test_no_interrupts_leaves_the_driver_waiting(rig):
    sim, driver = rig(PLAIN, no_interrupts=True)
    driver.transmit([frame(OTHER, driver.mac, 60)])
    assert driver.wait_interrupt(0.3) is None
    assert driver.tx.pending_used() == 1                       # the work was done, only never signalled
    assert sim.interrupts == 0


# -- interrupts and status -------------------------------------------------------------------

def test_resample_raises_the_line_again_while_isr_is_set(make_sim, memory):
    sim = make_sim()
    irq, resample = (os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC) for _ in range(2))
    try:
        sim.set_irqfd(irq, resample)
        hand = HandDriver(sim, memory, PLAIN)
        hand.chain(TX, out=[hand.buffer(bytes(10) + frame(OTHER, sim.mac, 60))])
        hand.wait_used(TX)
        wait_for(lambda: sim.interrupts == 1, what="the TX interrupt")
        os.eventfd_read(irq)
        os.eventfd_write(resample, 1)                          # EOI without reading ISR: still pending
        wait_for(lambda: sim.interrupts == 2, what="the re-raised interrupt")
        assert os.eventfd_read(irq) == 1
        assert sim.cfg_read(0x06, 2) & 0x08                    # PCI status: interrupt pending
        assert hand.read(VIRTIO_PCI_ISR, 1) == VIRTIO_PCI_ISR_QUEUE
        assert hand.read(VIRTIO_PCI_ISR, 1) == 0               # the read cleared it
        os.eventfd_write(resample, 1)
        time.sleep(0.05)
        assert sim.interrupts == 2
    finally:
        os.close(irq)
        os.close(resample)


def test_link_change_raises_a_config_interrupt(rig):
    sim, driver = rig(PLAIN)
    sim.set_link(False)
    assert driver.wait_interrupt(5.0) == VIRTIO_PCI_ISR_CONFIG
    assert not driver.link_up


def test_failed_status_stops_the_device_and_reset_recovers(rig, peer):
    sim, driver = rig(PLAIN)
    driver.write_reg(VIRTIO_PCI_STATUS, driver.read_reg(VIRTIO_PCI_STATUS, 1) | VIRTIO_CONFIG_S_FAILED, 1)
    driver.transmit([frame(OTHER, driver.mac, 60)])
    time.sleep(0.05)
    assert sim.frames_tx == 0 and driver.tx.pending_used() == 0
    driver.stop()                                              # status 0: the device forgets it all
    assert driver.read_reg(VIRTIO_PCI_STATUS, 1) == 0
    driver.write_reg(VIRTIO_PCI_QUEUE_SEL, TX, 2)
    assert driver.read_reg(VIRTIO_PCI_QUEUE_PFN, 4) == 0
    driver.start()
    sent = frame(OTHER, driver.mac, 99)
    driver.transmit([sent])
    assert peer.recv(4096) == sent
    assert sim.errors == []


# -- life cycle ---------------------------------------------------------------------------------

def test_close_leaves_no_thread_and_no_files(peer, memory):
    with SimNetDevice(peer.getsockname()) as sim:
        sim.sync_memory(memory)
        assert sim.worker_alive and sim_threads()
        path = sim.netdev_path
        assert os.path.exists(path)
    assert not sim_threads() and not sim.worker_alive
    assert not os.path.exists(os.path.dirname(path))
    sim.close()                                                 # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        sim.io_read(IO_BASE, 1)
