"""Legacy virtio-pci as Linux 2.6 drivers see it: constants, vring layout, and a minimal net ring driver.

The constants follow the legacy interface of the virtio spec (1.x, "Legacy
Interface" sections) and Linux 2.6.32's virtio_pci.h / virtio_net.h /
virtio_ring.h. ``RingDriver`` is the harness's own tiny virtio-net driver:
a self-test of a device backend and the ceiling a ported driver is later
measured against, not the product.
"""

from __future__ import annotations

import os
import select
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Protocol

from porter.harness.memory import GuestMemory


class PciFunction(Protocol):
    """What a device backend offers the harness: config space and I/O ports (bus addresses)."""

    def cfg_read(self, offset: int, size: int) -> int: ...
    def cfg_write(self, offset: int, value: int, size: int) -> None: ...
    def io_read(self, port: int, size: int) -> int: ...
    def io_write(self, port: int, value: int, size: int) -> None: ...


# -- PCI config space (the part a legacy virtio device needs) -----------------
PCI_VENDOR_ID = 0x00
PCI_DEVICE_ID = 0x02
PCI_COMMAND = 0x04
PCI_COMMAND_IO = 0x1
PCI_COMMAND_MEMORY = 0x2
PCI_COMMAND_MASTER = 0x4
PCI_REVISION_ID = 0x08
PCI_CLASS_DEVICE = 0x0A
PCI_BASE_ADDRESS_0 = 0x10
PCI_BASE_ADDRESS_SPACE_IO = 0x1
PCI_SUBSYSTEM_ID = 0x2E
PCI_INTERRUPT_LINE = 0x3C
PCI_INTERRUPT_PIN = 0x3D

VIRTIO_PCI_VENDOR = 0x1AF4
# Legacy ("transitional") device IDs are 0x1000 + (virtio device type - 1) for these.
VIRTIO_PCI_DEVICE_NET = 0x1000
VIRTIO_PCI_DEVICE_BLK = 0x1001
VIRTIO_PCI_DEVICE_RNG = 0x1005
VIRTIO_ID_NET, VIRTIO_ID_BLOCK, VIRTIO_ID_RNG = 1, 2, 4   # PCI subsystem ID


def size_io_bar(fn: PciFunction, bar: int = 0) -> int:
    """Size I/O BAR ``bar`` the way firmware does (write all-ones, read back the mask)."""
    reg = PCI_BASE_ADDRESS_0 + 4 * bar
    old = fn.cfg_read(reg, 4)
    fn.cfg_write(reg, 0xFFFF_FFFF, 4)
    mask = fn.cfg_read(reg, 4)
    fn.cfg_write(reg, old, 4)
    if not mask & PCI_BASE_ADDRESS_SPACE_IO:
        raise ValueError(f"BAR{bar} is not an I/O BAR (sizing read {mask:#010x})")
    return (~(mask & ~0x3) + 1) & 0xFFFF_FFFF


def assign_io_bar(fn: PciFunction, base: int, bar: int = 0) -> int:
    """Program I/O BAR ``bar`` at port ``base``, enable I/O decoding and bus mastering; return its size."""
    size = size_io_bar(fn, bar)
    if base % size:
        raise ValueError(f"I/O base {base:#x} is not aligned to the BAR size {size}")
    fn.cfg_write(PCI_BASE_ADDRESS_0 + 4 * bar, base | PCI_BASE_ADDRESS_SPACE_IO, 4)
    command = fn.cfg_read(PCI_COMMAND, 2)
    fn.cfg_write(PCI_COMMAND, command | PCI_COMMAND_IO | PCI_COMMAND_MASTER, 2)
    return size


# -- legacy virtio-pci registers (offsets in I/O BAR0, no MSI-X) --------------
VIRTIO_PCI_HOST_FEATURES = 0    # u32, device features 0..31
VIRTIO_PCI_GUEST_FEATURES = 4   # u32, features the driver accepts
VIRTIO_PCI_QUEUE_PFN = 8        # u32, ring address >> VIRTIO_PCI_QUEUE_ADDR_SHIFT
VIRTIO_PCI_QUEUE_NUM = 12       # u16, size of the selected queue (read only)
VIRTIO_PCI_QUEUE_SEL = 14       # u16
VIRTIO_PCI_QUEUE_NOTIFY = 16    # u16, queue index
VIRTIO_PCI_STATUS = 18          # u8
VIRTIO_PCI_ISR = 19             # u8, read clears it and lowers INTx
VIRTIO_PCI_CONFIG = 20          # device config, when MSI-X is off
VIRTIO_PCI_REGION_SIZE = 32     # what BAR0 of a legacy net device decodes (config included)
VIRTIO_PCI_QUEUE_ADDR_SHIFT = 12
VIRTIO_PCI_VRING_ALIGN = 4096

VIRTIO_PCI_ISR_QUEUE = 0x1
VIRTIO_PCI_ISR_CONFIG = 0x2

VIRTIO_CONFIG_S_ACKNOWLEDGE = 0x1
VIRTIO_CONFIG_S_DRIVER = 0x2
VIRTIO_CONFIG_S_DRIVER_OK = 0x4
VIRTIO_CONFIG_S_FAILED = 0x80

# Transport feature bits.
VIRTIO_F_NOTIFY_ON_EMPTY = 24
VIRTIO_F_ANY_LAYOUT = 27
VIRTIO_RING_F_INDIRECT_DESC = 28
VIRTIO_RING_F_EVENT_IDX = 29
VIRTIO_F_BAD_FEATURE = 30

# virtio-net feature bits.
VIRTIO_NET_F_CSUM = 0           # device handles partial checksums on TX
VIRTIO_NET_F_GUEST_CSUM = 1     # driver handles partial checksums on RX
VIRTIO_NET_F_CTRL_GUEST_OFFLOADS = 2
VIRTIO_NET_F_MAC = 5            # config holds the MAC
VIRTIO_NET_F_GSO = 6
VIRTIO_NET_F_GUEST_TSO4 = 7
VIRTIO_NET_F_GUEST_TSO6 = 8
VIRTIO_NET_F_GUEST_ECN = 9
VIRTIO_NET_F_GUEST_UFO = 10
VIRTIO_NET_F_HOST_TSO4 = 11
VIRTIO_NET_F_HOST_TSO6 = 12
VIRTIO_NET_F_HOST_ECN = 13
VIRTIO_NET_F_HOST_UFO = 14
VIRTIO_NET_F_MRG_RXBUF = 15     # RX buffers may merge; header grows num_buffers
VIRTIO_NET_F_STATUS = 16        # config holds link status
VIRTIO_NET_F_CTRL_VQ = 17       # control queue (queue 2)
VIRTIO_NET_F_CTRL_RX = 18       # RX mode control (promiscuous, all-multicast)
VIRTIO_NET_F_CTRL_VLAN = 19
VIRTIO_NET_F_CTRL_RX_EXTRA = 20
VIRTIO_NET_F_GUEST_ANNOUNCE = 21

# virtio-net device config (at VIRTIO_PCI_CONFIG).
VIRTIO_NET_CONFIG_MAC = 0       # 6 bytes
VIRTIO_NET_CONFIG_STATUS = 6    # u16
VIRTIO_NET_S_LINK_UP = 1
VIRTIO_NET_S_ANNOUNCE = 2

# struct virtio_net_hdr, and virtio_net_hdr_mrg_rxbuf (+ u16 num_buffers) once MRG_RXBUF is on.
VIRTIO_NET_HDR_LEN = 10
VIRTIO_NET_HDR_MRG_RXBUF_LEN = 12
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_GSO_NONE = 0

VIRTIO_NET_RX_QUEUE = 0
VIRTIO_NET_TX_QUEUE = 1


def bit(feature: int) -> int:
    return 1 << feature


# -- split virtqueue layout ----------------------------------------------------
VRING_DESC_F_NEXT = 1
VRING_DESC_F_WRITE = 2
VRING_DESC_F_INDIRECT = 4
VRING_AVAIL_F_NO_INTERRUPT = 1
VRING_USED_F_NO_NOTIFY = 1

VRING_DESC = struct.Struct("<QIHH")     # addr, len, flags, next
VRING_USED_ELEM = struct.Struct("<II")  # id, len
_U16 = struct.Struct("<H")


def _align(value: int, align: int) -> int:
    return (value + align - 1) & ~(align - 1)


@dataclass(frozen=True)
class VringLayout:
    """Where the parts of a legacy split ring of ``num`` entries lie when it starts at ``desc``."""
    num: int
    desc: int
    avail: int
    used: int
    size: int

    @classmethod
    def at(cls, base: int, num: int, align: int = VIRTIO_PCI_VRING_ALIGN) -> VringLayout:
        """The legacy spec's layout (virtq_size): the used ring starts on the next ``align`` boundary.

        Space for used_event/avail_event is reserved as the spec does, even
        without EVENT_IDX, so the layout is the same either way.
        """
        if num <= 0 or num & (num - 1):
            raise ValueError(f"queue size must be a power of two, not {num}")
        if base % align:
            raise ValueError(f"ring address {base:#x} is not {align}-aligned")
        avail = base + VRING_DESC.size * num
        used = _align(avail + 2 * (3 + num), align)
        end = _align(used + 2 * 3 + VRING_USED_ELEM.size * num, align)
        return cls(num=num, desc=base, avail=avail, used=used, size=end - base)

    @property
    def avail_idx(self) -> int:
        return self.avail + 2

    def avail_ring(self, i: int) -> int:
        return self.avail + 4 + 2 * (i % self.num)

    @property
    def used_idx(self) -> int:
        return self.used + 2

    def used_ring(self, i: int) -> int:
        return self.used + 4 + VRING_USED_ELEM.size * (i % self.num)


class DeviceError(RuntimeError):
    """The device did something a correct virtio device never does."""


class Virtqueue:
    """Driver side of one split ring whose descriptors are pre-built two-entry chains.

    Slot ``i`` owns descriptors ``2i`` (the virtio-net header) and ``2i+1``
    (the data buffer), both at fixed addresses, as Linux 2.6's virtio_net
    lays out its scatterlists; per packet only the avail ring and the data
    length change.
    """

    HEADER_ROOM = 64                 # header area per slot, keeps data cache-line aligned

    def __init__(self, memory: GuestMemory, index: int, layout: VringLayout, buffers: int,
                 header_len: int, buffer_size: int, device_writes: bool) -> None:
        self.memory = memory
        self.index = index
        self.layout = layout
        self.header_len = header_len
        self.buffer_size = buffer_size
        self.stride = self.HEADER_ROOM + _align(buffer_size, 64)
        self.slots = layout.num // 2
        self.buffers = buffers
        self.end = buffers + self.slots * self.stride
        memory.fill(layout.desc, layout.size)
        memory.fill(buffers, self.end - buffers)     # TX headers stay all-zero: no offloads
        write = VRING_DESC_F_WRITE if device_writes else 0
        for slot in range(self.slots):
            hdr = self.header_addr(slot)
            memory.pack(VRING_DESC, layout.desc + VRING_DESC.size * 2 * slot,
                        hdr, header_len, VRING_DESC_F_NEXT | write, 2 * slot + 1)
            memory.pack(VRING_DESC, layout.desc + VRING_DESC.size * (2 * slot + 1),
                        hdr + self.HEADER_ROOM, buffer_size, write, 0)
        self.free = deque(range(self.slots))
        self.avail_idx = 0           # next free avail entry (free-running u16)
        self.last_used = 0           # next used entry to look at

    def header_addr(self, slot: int) -> int:
        return self.buffers + slot * self.stride

    def data_addr(self, slot: int) -> int:
        return self.header_addr(slot) + self.HEADER_ROOM

    def add(self, slot: int, data_len: Optional[int] = None) -> None:
        """Put ``slot`` on the avail ring (invisible to the device until publish())."""
        if data_len is not None:
            self.memory.pack("<I", self.layout.desc + VRING_DESC.size * (2 * slot + 1) + 8, data_len)
        self.memory.pack(_U16, self.layout.avail_ring(self.avail_idx), 2 * slot)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF

    def publish(self) -> None:
        # Entries and descriptors were stored first; x86 keeps stores in order.
        self.memory.pack(_U16, self.layout.avail_idx, self.avail_idx)

    def pending_used(self) -> int:
        return (self.memory.unpack(_U16, self.layout.used_idx)[0] - self.last_used) & 0xFFFF

    def take_used(self) -> list[tuple[int, int]]:
        """(slot, bytes written by the device) for every newly used chain."""
        count = self.pending_used()
        if count > self.slots:
            raise DeviceError(f"queue {self.index}: used index jumped by {count}, "
                              f"more than the {self.slots} chains ever posted")
        done = []
        for _ in range(count):
            head, length = self.memory.unpack(VRING_USED_ELEM, self.layout.used_ring(self.last_used))
            if head % 2 or head >= self.layout.num:
                raise DeviceError(f"queue {self.index}: used entry names descriptor {head}, "
                                  f"which is not the head of a posted chain")
            done.append((head // 2, length))
            self.last_used = (self.last_used + 1) & 0xFFFF
        return done


@dataclass(frozen=True)
class RxFrame:
    frame: bytes
    header: bytes
    addr: int        # guest-physical address the frame was written to


class RingDriver:
    """A minimal legacy virtio-net driver run by the harness itself.

    ``start()`` programs BAR0 at ``io_base``, negotiates ``features`` (those
    the device also offers), builds the RX and TX rings and their buffers in
    ``memory`` from ``base`` on, posts every RX buffer and sets DRIVER_OK.
    With ``irq_fd`` it sleeps on the interrupt eventfd (reading ISR to ack,
    then writing ``resample_fd`` as the EOI); without, it polls the used rings.
    """

    def __init__(self, device: PciFunction, memory: GuestMemory, *, io_base: int = 0xC000,
                 base: int = 0x10_0000, features: int = bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS),
                 irq_fd: Optional[int] = None, resample_fd: Optional[int] = None,
                 buffer_size: int = 2048) -> None:
        self.device = device
        self.memory = memory
        self.io_base = io_base
        self.base = base
        self.wanted_features = features
        self.irq_fd = irq_fd
        self.resample_fd = resample_fd
        self.buffer_size = buffer_size
        self.host_features = 0
        self.features = 0
        self.interrupts = 0          # interrupt eventfd wake-ups handled
        self.rx: Optional[Virtqueue] = None
        self.tx: Optional[Virtqueue] = None
        self.end = base              # first guest-physical byte after rings and buffers, once started
        self._poll = None
        if irq_fd is not None:
            self._poll = select.poll()
            self._poll.register(irq_fd, select.POLLIN)

    # -- registers ----------------------------------------------------------

    def read_reg(self, offset: int, size: int) -> int:
        return self.device.io_read(self.io_base + offset, size)

    def write_reg(self, offset: int, value: int, size: int) -> None:
        self.device.io_write(self.io_base + offset, value, size)

    def config(self, offset: int, length: int) -> bytes:
        return bytes(self.read_reg(VIRTIO_PCI_CONFIG + offset + i, 1) for i in range(length))

    # -- bring-up -------------------------------------------------------------

    def start(self) -> RingDriver:
        vendor = self.device.cfg_read(PCI_VENDOR_ID, 2)
        device = self.device.cfg_read(PCI_DEVICE_ID, 2)
        if (vendor, device) != (VIRTIO_PCI_VENDOR, VIRTIO_PCI_DEVICE_NET):
            raise DeviceError(f"expected a legacy virtio-net device 1af4:1000, found {vendor:04x}:{device:04x}")
        assign_io_bar(self.device, self.io_base)
        self.write_reg(VIRTIO_PCI_STATUS, 0, 1)                       # reset
        self.write_reg(VIRTIO_PCI_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE, 1)
        self.write_reg(VIRTIO_PCI_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, 1)
        self.host_features = self.read_reg(VIRTIO_PCI_HOST_FEATURES, 4)
        self.features = self.host_features & self.wanted_features
        self.write_reg(VIRTIO_PCI_GUEST_FEATURES, self.features, 4)
        header_len = VIRTIO_NET_HDR_MRG_RXBUF_LEN if self.has(VIRTIO_NET_F_MRG_RXBUF) else VIRTIO_NET_HDR_LEN
        at = self.base
        rings = []
        for index in (VIRTIO_NET_RX_QUEUE, VIRTIO_NET_TX_QUEUE):
            self.write_reg(VIRTIO_PCI_QUEUE_SEL, index, 2)
            num = self.read_reg(VIRTIO_PCI_QUEUE_NUM, 2)
            if num == 0:
                raise DeviceError(f"queue {index} does not exist")
            layout = VringLayout.at(at, num)
            self.write_reg(VIRTIO_PCI_QUEUE_PFN, layout.desc >> VIRTIO_PCI_QUEUE_ADDR_SHIFT, 4)
            rings.append(layout)
            at += layout.size
        self.rx = Virtqueue(self.memory, VIRTIO_NET_RX_QUEUE, rings[0], at, header_len,
                            self.buffer_size, device_writes=True)
        self.tx = Virtqueue(self.memory, VIRTIO_NET_TX_QUEUE, rings[1], self.rx.end, header_len,
                            self.buffer_size, device_writes=False)
        self.end = self.tx.end
        for slot in range(self.rx.slots):
            self.rx.add(slot)
        self.rx.free.clear()
        self.rx.publish()
        self.write_reg(VIRTIO_PCI_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER
                       | VIRTIO_CONFIG_S_DRIVER_OK, 1)
        self.kick(self.rx)
        return self

    def stop(self) -> None:
        """Reset the device: it forgets the rings, so the memory is ours again."""
        self.write_reg(VIRTIO_PCI_STATUS, 0, 1)

    def has(self, feature: int) -> bool:
        return bool(self.features & bit(feature))

    @property
    def mac(self) -> Optional[bytes]:
        return self.config(VIRTIO_NET_CONFIG_MAC, 6) if self.has(VIRTIO_NET_F_MAC) else None

    @property
    def link_up(self) -> bool:
        """Link state from config; a device without STATUS is always up."""
        if not self.has(VIRTIO_NET_F_STATUS):
            return True
        return bool(self.read_reg(VIRTIO_PCI_CONFIG + VIRTIO_NET_CONFIG_STATUS, 2) & VIRTIO_NET_S_LINK_UP)

    def kick(self, queue: Virtqueue) -> None:
        # Always notify: skipping on VRING_USED_F_NO_NOTIFY needs a store-load
        # fence between publish() and reading the flag, which Python cannot issue.
        self.write_reg(VIRTIO_PCI_QUEUE_NOTIFY, queue.index, 2)

    # -- interrupts -----------------------------------------------------------

    def wait_interrupt(self, timeout: float) -> Optional[int]:
        """Wait for the interrupt eventfd; ack it (ISR read, then EOI). ISR value, or None on timeout."""
        if self._poll is None:
            raise RuntimeError("RingDriver was built without an irq_fd")
        if not self._poll.poll(max(0, int(timeout * 1000))):
            return None
        try:
            os.eventfd_read(self.irq_fd)
        except BlockingIOError:      # someone else drained it: nothing to ack
            return None
        isr = self.read_reg(VIRTIO_PCI_ISR, 1)
        if self.resample_fd is not None:
            os.eventfd_write(self.resample_fd, 1)
        self.interrupts += 1
        return isr

    def _wait_for(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what}: nothing within {timeout}s")
            # Re-check the ring at least every 50 ms: an interrupt may already
            # have been consumed by a wait for the other queue.
            if self._poll is not None:
                self.wait_interrupt(min(left, 0.05))
            else:
                time.sleep(0.0002)

    # -- TX -------------------------------------------------------------------

    def reap_tx(self) -> int:
        """Take back the TX slots the device has finished with; return how many."""
        assert self.tx is not None
        done = self.tx.take_used()
        self.tx.free.extend(slot for slot, _ in done)
        return len(done)

    def transmit(self, frames: Iterable[bytes], timeout: float = 5.0) -> int:
        """Queue ``frames`` (waiting for free slots when the ring is full), one kick per batch."""
        tx = self.tx
        assert tx is not None, "start() first"
        sent = queued = 0
        for frame in frames:
            if len(frame) > self.buffer_size:
                raise ValueError(f"frame of {len(frame)} bytes exceeds the {self.buffer_size}-byte TX buffer")
            if not tx.free:
                self.reap_tx()
            if not tx.free:
                if queued:
                    tx.publish()
                    self.kick(tx)
                    queued = 0
                self._wait_for(lambda: tx.pending_used() > 0, timeout, "TX ring full")
                self.reap_tx()
            slot = tx.free.popleft()
            self.memory.write(tx.data_addr(slot), frame)
            tx.add(slot, len(frame))
            queued += 1
            sent += 1
        if queued:
            tx.publish()
            self.kick(tx)
        return sent

    def flush_tx(self, timeout: float = 5.0) -> None:
        """Wait until the device has used every TX chain given to it."""
        tx = self.tx
        assert tx is not None

        def all_back() -> bool:
            self.reap_tx()
            return len(tx.free) == tx.slots

        self._wait_for(all_back, timeout, "TX completion")

    # -- RX -------------------------------------------------------------------

    def poll_rx(self) -> list[RxFrame]:
        """Frames the device has delivered so far; their buffers go straight back to the device."""
        rx = self.rx
        assert rx is not None, "start() first"
        done = rx.take_used()
        frames = []
        for slot, length in done:
            if length < rx.header_len or length > rx.header_len + rx.buffer_size:
                raise DeviceError(f"RX used length {length} does not fit a {rx.header_len}-byte header "
                                  f"plus {rx.buffer_size}-byte buffer")
            header = self.memory.read(rx.header_addr(slot), rx.header_len)
            if rx.header_len == VIRTIO_NET_HDR_MRG_RXBUF_LEN and header[10:12] != b"\x01\x00":
                raise DeviceError(f"RX frame spans {_U16.unpack(header[10:12])[0]} buffers; "
                                  "RingDriver posts whole-frame buffers and does not merge")
            addr = rx.data_addr(slot)
            frames.append(RxFrame(self.memory.read(addr, length - rx.header_len), header, addr))
            rx.add(slot)
        if done:
            rx.publish()
            self.kick(rx)
        return frames

    def receive(self, count: int = 1, timeout: float = 5.0) -> list[RxFrame]:
        """Wait until ``count`` frames have arrived; return them (more if they came together)."""
        frames: list[RxFrame] = []

        def enough() -> bool:
            frames.extend(self.poll_rx())
            return len(frames) >= count

        try:
            self._wait_for(enough, timeout, f"RX of {count} frame(s)")
        except TimeoutError as e:
            raise TimeoutError(f"{e} (got {len(frames)})") from None
        return frames
