"""The harness's own legacy virtio drivers: a backend's self-test, and the ceiling a ported driver is measured against.

``LegacyVirtioDriver`` does what every legacy driver does (BAR0, reset,
feature negotiation, rings, DRIVER_OK, kicks, INTx with EOI); a device's
driver adds its queues' buffers and its traffic. ``NetRingDriver`` is a
minimal virtio-net driver, ``BlkRingDriver`` a minimal virtio-blk driver.
None of this is the product: it is the ruler.
"""

from __future__ import annotations

import os
import select
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

from porter.harness.memory import GuestMemory, store_u16
from porter.harness.pci import PCI_DEVICE_ID, PCI_VENDOR_ID, PciFunction, assign_io_bar
from porter.harness.virtio_blk import (
    SECTOR, VIRTIO_BLK_CONFIG, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX,
    VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_OUTHDR, VIRTIO_BLK_REQUEST_QUEUE, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT)
from porter.harness.virtio_net import (
    VIRTIO_NET_CONFIG_MAC, VIRTIO_NET_CONFIG_STATUS, VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS,
    VIRTIO_NET_HDR_LEN, VIRTIO_NET_RX_QUEUE, VIRTIO_NET_S_LINK_UP, VIRTIO_NET_TX_QUEUE, header_len)
from porter.harness.virtio_pci import (
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_PCI_CONFIG,
    VIRTIO_PCI_DEVICE_BLK, VIRTIO_PCI_DEVICE_NET, VIRTIO_PCI_GUEST_FEATURES, VIRTIO_PCI_HOST_FEATURES, VIRTIO_PCI_ISR,
    VIRTIO_PCI_QUEUE_ADDR_SHIFT, VIRTIO_PCI_QUEUE_NOTIFY, VIRTIO_PCI_QUEUE_NUM, VIRTIO_PCI_QUEUE_PFN,
    VIRTIO_PCI_QUEUE_SEL, VIRTIO_PCI_STATUS, VIRTIO_PCI_VENDOR, bit)
from porter.harness.virtio_pci import VIRTIO_PCI_DEVICE_RNG
from porter.harness.virtio_rng import VIRTIO_RNG_QUEUE
from porter.harness.vring import (U16, VRING_DESC, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_USED_ELEM,
                                  VringLayout, align)


class DeviceError(RuntimeError):
    """The device did something a correct virtio device never does."""


@dataclass(frozen=True)
class Segment:
    """One descriptor of a slot's chain: its buffer size and who writes it."""
    size: int
    device_writes: bool


class Virtqueue:
    """Driver side of one split ring whose descriptors are pre-built chains, one per slot.

    Slot ``i`` owns descriptors ``k*i .. k*i+k-1`` (``k`` = len(segments)),
    each with a buffer at a fixed address, as Linux 2.6's drivers lay out
    their scatterlists; per request only lengths, directions and the avail
    ring change.
    """

    ALIGN = 64                       # every buffer starts on a cache line

    def __init__(self, memory: GuestMemory, index: int, layout: VringLayout, buffers: int,
                 segments: Sequence[Segment]) -> None:
        self.memory = memory
        self.index = index
        self.layout = layout
        self.segments = tuple(segments)
        self.per_slot = len(self.segments)
        self.offsets = []
        at = 0
        for seg in self.segments:
            self.offsets.append(at)
            at += align(seg.size, self.ALIGN)
        self.stride = at
        self.slots = layout.num // self.per_slot
        self.buffers = buffers
        self.end = buffers + self.slots * self.stride
        memory.fill(layout.desc, layout.size)
        memory.fill(buffers, self.end - buffers)     # e.g. TX headers stay all-zero: no offloads
        for slot in range(self.slots):
            for i, seg in enumerate(self.segments):
                last = i + 1 == self.per_slot
                flags = (VRING_DESC_F_WRITE if seg.device_writes else 0) | (0 if last else VRING_DESC_F_NEXT)
                memory.pack(VRING_DESC, self._desc(slot, i), self.addr(slot, i), seg.size, flags,
                            0 if last else self.per_slot * slot + i + 1)
        self.free = deque(range(self.slots))
        self.avail_idx = 0           # next free avail entry (free-running u16)
        self.last_used = 0           # next used entry to look at

    def _desc(self, slot: int, i: int) -> int:
        return self.layout.desc + VRING_DESC.size * (self.per_slot * slot + i)

    def addr(self, slot: int, i: int) -> int:
        """Guest-physical address of segment ``i`` of ``slot``."""
        return self.buffers + slot * self.stride + self.offsets[i]

    def set_segment(self, slot: int, i: int, length: int, device_writes: Optional[bool] = None) -> None:
        """Change segment ``i``'s length (at most its size) and, optionally, its direction."""
        if length > self.segments[i].size:
            raise ValueError(f"segment {i} holds {self.segments[i].size} bytes, not {length}")
        desc = self._desc(slot, i)
        self.memory.pack("<I", desc + 8, length)
        if device_writes is not None:
            flags = self.memory.unpack("<H", desc + 12)[0] & ~VRING_DESC_F_WRITE
            self.memory.pack("<H", desc + 12, flags | (VRING_DESC_F_WRITE if device_writes else 0))

    def link(self, slot: int, i: int, j: Optional[int]) -> None:
        """Make segment ``j`` of ``slot`` follow segment ``i`` (``j`` None: ``i`` ends the chain),
        e.g. to leave out a data segment a request does not use (devices refuse empty buffers)."""
        desc = self._desc(slot, i)
        flags = self.memory.unpack("<H", desc + 12)[0] & ~VRING_DESC_F_NEXT
        self.memory.pack("<HH", desc + 12, flags | (0 if j is None else VRING_DESC_F_NEXT),
                         0 if j is None else self.per_slot * slot + j)

    def add(self, slot: int) -> None:
        """Put ``slot`` on the avail ring (invisible to the device until publish())."""
        self.memory.pack(U16, self.layout.avail_ring(self.avail_idx), self.per_slot * slot)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF

    def publish(self) -> None:
        # Entries and descriptors were stored first; x86 keeps stores in order.
        store_u16(self.memory.buffer, self.layout.avail_idx, self.avail_idx)

    def pending_used(self) -> int:
        return (self.memory.unpack(U16, self.layout.used_idx)[0] - self.last_used) & 0xFFFF

    def take_used(self) -> list[tuple[int, int]]:
        """(slot, bytes written by the device) for every newly used chain."""
        count = self.pending_used()
        if count > self.slots:
            raise DeviceError(f"queue {self.index}: used index jumped by {count}, "
                              f"more than the {self.slots} chains ever posted")
        done = []
        for _ in range(count):
            head, length = self.memory.unpack(VRING_USED_ELEM, self.layout.used_ring(self.last_used))
            if head % self.per_slot or head >= self.layout.num:
                raise DeviceError(f"queue {self.index}: used entry names descriptor {head}, "
                                  f"which is not the head of a posted chain")
            done.append((head // self.per_slot, length))
            self.last_used = (self.last_used + 1) & 0xFFFF
        return done


class LegacyVirtioDriver:
    """Bring-up and plumbing every legacy virtio-pci driver shares.

    ``start()`` checks the PCI IDs, programs BAR0 at ``io_base``, resets,
    negotiates ``features`` (those the device also offers), places each
    queue's ring and buffers in ``memory`` from ``base`` on (``queues()``
    says which and how), lets the subclass post buffers (``ready()``) and
    sets DRIVER_OK. With ``irq_fd`` it sleeps on the interrupt eventfd
    (reading ISR to ack, then writing ``resample_fd`` as the EOI); without,
    it polls the used rings.
    """

    PCI_DEVICE_ID: int
    NAME: str

    def __init__(self, device: PciFunction, memory: GuestMemory, *, io_base: int = 0xC000,
                 base: int = 0x10_0000, features: int = 0, irq_fd: Optional[int] = None,
                 resample_fd: Optional[int] = None) -> None:
        self.device = device
        self.memory = memory
        self.io_base = io_base
        self.base = base
        self.wanted_features = features
        self.irq_fd = irq_fd
        self.resample_fd = resample_fd
        self.host_features = 0
        self.features = 0
        self.interrupts = 0          # interrupt eventfd wake-ups handled
        self.end = base              # first guest-physical byte after rings and buffers, once started
        self._poll = None
        if irq_fd is not None:
            self._poll = select.poll()
            self._poll.register(irq_fd, select.POLLIN)

    # -- what a device's driver says -------------------------------------------------------

    def queues(self) -> list[tuple[int, Sequence[Segment]]]:
        """(queue index, the segments of each slot's chain), once features are negotiated."""
        raise NotImplementedError

    def ready(self, queues: list[Virtqueue]) -> None:
        """The rings exist and DRIVER_OK is not yet set: post what the device should find."""

    # -- registers ----------------------------------------------------------

    def read_reg(self, offset: int, size: int) -> int:
        return self.device.io_read(self.io_base + offset, size)

    def write_reg(self, offset: int, value: int, size: int) -> None:
        self.device.io_write(self.io_base + offset, value, size)

    def config(self, offset: int, length: int) -> bytes:
        return bytes(self.read_reg(VIRTIO_PCI_CONFIG + offset + i, 1) for i in range(length))

    def has(self, feature: int) -> bool:
        return bool(self.features & bit(feature))

    # -- bring-up -------------------------------------------------------------

    def start(self):
        vendor = self.device.cfg_read(PCI_VENDOR_ID, 2)
        device = self.device.cfg_read(PCI_DEVICE_ID, 2)
        if (vendor, device) != (VIRTIO_PCI_VENDOR, self.PCI_DEVICE_ID):
            raise DeviceError(f"expected a legacy {self.NAME} device {VIRTIO_PCI_VENDOR:04x}:"
                              f"{self.PCI_DEVICE_ID:04x}, found {vendor:04x}:{device:04x}")
        assign_io_bar(self.device, self.io_base)
        self.write_reg(VIRTIO_PCI_STATUS, 0, 1)                       # reset
        self.write_reg(VIRTIO_PCI_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE, 1)
        self.write_reg(VIRTIO_PCI_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, 1)
        self.host_features = self.read_reg(VIRTIO_PCI_HOST_FEATURES, 4)
        self.features = self.host_features & self.wanted_features
        self.write_reg(VIRTIO_PCI_GUEST_FEATURES, self.features, 4)
        specs = self.queues()
        at, layouts = self.base, []
        for index, _ in specs:
            self.write_reg(VIRTIO_PCI_QUEUE_SEL, index, 2)
            num = self.read_reg(VIRTIO_PCI_QUEUE_NUM, 2)
            if num == 0:
                raise DeviceError(f"queue {index} does not exist")
            layout = VringLayout.at(at, num)
            self.write_reg(VIRTIO_PCI_QUEUE_PFN, layout.desc >> VIRTIO_PCI_QUEUE_ADDR_SHIFT, 4)
            layouts.append(layout)
            at += layout.size
        queues = []
        for (index, segments), layout in zip(specs, layouts):
            queues.append(Virtqueue(self.memory, index, layout, at, segments))
            at = queues[-1].end
        self.end = at
        self.ready(queues)
        self.write_reg(VIRTIO_PCI_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER
                       | VIRTIO_CONFIG_S_DRIVER_OK, 1)
        return self

    def stop(self) -> None:
        """Reset the device: it forgets the rings, so the memory is ours again."""
        self.write_reg(VIRTIO_PCI_STATUS, 0, 1)

    def kick(self, queue: Virtqueue) -> None:
        # Always notify: skipping on VRING_USED_F_NO_NOTIFY needs a store-load
        # fence between publish() and reading the flag, which Python cannot issue.
        self.write_reg(VIRTIO_PCI_QUEUE_NOTIFY, queue.index, 2)

    # -- interrupts -----------------------------------------------------------

    def wait_interrupt(self, timeout: float) -> Optional[int]:
        """Wait for the interrupt eventfd; ack it (ISR read, then EOI). ISR value, or None on timeout."""
        if self._poll is None:
            raise RuntimeError(f"{type(self).__name__} was built without an irq_fd")
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

    def collect(self, poll: Callable[[], Sequence], into, count: int, timeout: float, what: str):
        """Extend ``into`` with what ``poll()`` returns until it holds ``count`` items; return it."""
        def enough() -> bool:
            into.extend(poll())
            return len(into) >= count

        try:
            self.wait_for(enough, timeout, what)
        except TimeoutError as e:
            raise TimeoutError(f"{e} (got {len(into)})") from None
        return into

    def wait_for(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
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


@dataclass(frozen=True)
class RxFrame:
    frame: bytes
    header: bytes
    addr: int        # guest-physical address the frame was written to


class NetRingDriver(LegacyVirtioDriver):
    """A minimal legacy virtio-net driver: every RX slot posted, frames sent in batches with one kick each.

    Each slot's chain is the virtio-net header and a ``buffer_size`` data
    buffer (two descriptors), as 2.6's virtio_net posts small-packet buffers.
    """

    PCI_DEVICE_ID = VIRTIO_PCI_DEVICE_NET
    NAME = "virtio-net"

    def __init__(self, device: PciFunction, memory: GuestMemory, *,
                 features: int = bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS),
                 buffer_size: int = 2048, **kwargs) -> None:
        super().__init__(device, memory, features=features, **kwargs)
        self.buffer_size = buffer_size
        self.rx: Optional[Virtqueue] = None
        self.tx: Optional[Virtqueue] = None

    def queues(self) -> list[tuple[int, Sequence[Segment]]]:
        hdr = header_len(self.features)
        return [(VIRTIO_NET_RX_QUEUE, (Segment(hdr, True), Segment(self.buffer_size, True))),
                (VIRTIO_NET_TX_QUEUE, (Segment(hdr, False), Segment(self.buffer_size, False)))]

    def ready(self, queues: list[Virtqueue]) -> None:
        self.rx, self.tx = queues
        for slot in range(self.rx.slots):
            self.rx.add(slot)
        self.rx.free.clear()
        self.rx.publish()

    def start(self) -> NetRingDriver:
        super().start()
        self.kick(self.rx)
        return self

    @property
    def header_len(self) -> int:
        return header_len(self.features)

    @property
    def mac(self) -> Optional[bytes]:
        return self.config(VIRTIO_NET_CONFIG_MAC, 6) if self.has(VIRTIO_NET_F_MAC) else None

    @property
    def link_up(self) -> bool:
        """Link state from config; a device without STATUS is always up."""
        if not self.has(VIRTIO_NET_F_STATUS):
            return True
        return bool(self.read_reg(VIRTIO_PCI_CONFIG + VIRTIO_NET_CONFIG_STATUS, 2) & VIRTIO_NET_S_LINK_UP)

    # -- TX -------------------------------------------------------------------

    def reap_tx(self) -> int:
        """Take back the TX slots the device has finished with; return how many."""
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
                self.wait_for(lambda: tx.pending_used() > 0, timeout, "TX ring full")
                self.reap_tx()
            slot = tx.free.popleft()
            self.memory.write(tx.addr(slot, 1), frame)
            tx.set_segment(slot, 1, len(frame))
            tx.add(slot)
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

        self.wait_for(all_back, timeout, "TX completion")

    # -- RX -------------------------------------------------------------------

    def poll_rx(self) -> list[RxFrame]:
        """Frames the device has delivered so far; their buffers go straight back to the device."""
        rx = self.rx
        assert rx is not None, "start() first"
        done = rx.take_used()
        hdr = self.header_len
        frames = []
        for slot, length in done:
            if length < hdr or length > hdr + self.buffer_size:
                raise DeviceError(f"RX used length {length} does not fit a {hdr}-byte header "
                                  f"plus {self.buffer_size}-byte buffer")
            header = self.memory.read(rx.addr(slot, 0), hdr)
            if hdr > VIRTIO_NET_HDR_LEN and header[VIRTIO_NET_HDR_LEN:] != b"\x01\x00":
                raise DeviceError(f"RX frame spans {U16.unpack(header[VIRTIO_NET_HDR_LEN:])[0]} buffers; "
                                  f"{type(self).__name__} posts whole-frame buffers and does not merge")
            addr = rx.addr(slot, 1)
            frames.append(RxFrame(self.memory.read(addr, length - hdr), header, addr))
            rx.add(slot)
        if done:
            rx.publish()
            self.kick(rx)
        return frames

    def receive(self, count: int = 1, timeout: float = 5.0) -> list[RxFrame]:
        """Wait until ``count`` frames have arrived; return them (more if they came together)."""
        return self.collect(self.poll_rx, [], count, timeout, f"RX of {count} frame(s)")


@dataclass(frozen=True)
class BlkDone:
    """A finished virtio-blk request: the slot, its status byte, the bytes the device wrote."""
    slot: int
    status: int
    written: int


class BlkRingDriver(LegacyVirtioDriver):
    """A minimal legacy virtio-blk driver: a slot is a request header, one data buffer of
    ``max_bytes`` and the status byte (three descriptors, as a 2.6 driver lays out a
    one-segment request); requests go out in batches with one kick each.

    ``submit()`` posts requests without waiting, ``reap()`` takes the finished ones
    (``read_data()`` gives a read's bytes), ``read()``/``write()``/``flush()`` do one
    request and wait for it.
    """

    PCI_DEVICE_ID = VIRTIO_PCI_DEVICE_BLK
    NAME = "virtio-blk"
    DATA, STATUS = 1, 2              # the segments of a slot after the header (0)

    def __init__(self, device: PciFunction, memory: GuestMemory, *,
                 features: int = (bit(VIRTIO_BLK_F_SEG_MAX) | bit(VIRTIO_BLK_F_SIZE_MAX) | bit(VIRTIO_BLK_F_BLK_SIZE)
                                  | bit(VIRTIO_BLK_F_FLUSH) | bit(VIRTIO_BLK_F_RO)),
                 max_bytes: int = 128 * 1024, **kwargs) -> None:
        super().__init__(device, memory, features=features, **kwargs)
        self.max_bytes = max_bytes
        self.vq: Optional[Virtqueue] = None
        self._queued = 0

    def queues(self) -> list[tuple[int, Sequence[Segment]]]:
        return [(VIRTIO_BLK_REQUEST_QUEUE, (Segment(VIRTIO_BLK_OUTHDR.size, False), Segment(self.max_bytes, True),
                                            Segment(1, True)))]

    def ready(self, queues: list[Virtqueue]) -> None:
        (self.vq,) = queues

    # -- what the device says -----------------------------------------------------------------

    def _config(self) -> tuple:
        return VIRTIO_BLK_CONFIG.unpack(self.config(0, VIRTIO_BLK_CONFIG.size))

    @property
    def capacity(self) -> int:
        """The disk's size in SECTORs."""
        return self._config()[0]

    @property
    def block_size(self) -> int:
        return self._config()[6] if self.has(VIRTIO_BLK_F_BLK_SIZE) else SECTOR

    @property
    def read_only(self) -> bool:
        return self.has(VIRTIO_BLK_F_RO)

    # -- requests -------------------------------------------------------------------------------

    @property
    def free_slots(self) -> int:
        return len(self.vq.free)

    def submit(self, kind: int, sector: int = 0, nbytes: int = 0, data: Optional[bytes] = None) -> int:
        """Queue one request (VIRTIO_BLK_T_IN, _OUT with ``data``, _FLUSH); its slot. kick() sends the batch."""
        vq = self.vq
        assert vq is not None, "start() first"
        if not vq.free:
            raise DeviceError("no free slot: reap() finished requests first")
        if kind == VIRTIO_BLK_T_OUT:
            nbytes = len(data)
        if nbytes > self.max_bytes or nbytes % SECTOR:
            raise ValueError(f"{nbytes} bytes: a slot moves whole sectors up to {self.max_bytes} bytes")
        slot = vq.free.popleft()
        self.memory.pack(VIRTIO_BLK_OUTHDR, vq.addr(slot, 0), kind, 0, sector)
        self.memory.write(vq.addr(slot, self.STATUS), b"\xff")          # a status the device must overwrite
        if nbytes:
            if data is not None:
                self.memory.write(vq.addr(slot, self.DATA), data)
            vq.set_segment(slot, self.DATA, nbytes, device_writes=kind == VIRTIO_BLK_T_IN)
            vq.link(slot, 0, self.DATA)
        else:
            vq.link(slot, 0, self.STATUS)                               # no empty data buffer
        vq.add(slot)
        self._queued += 1
        return slot

    def kick_requests(self) -> None:
        if self._queued:
            self.vq.publish()
            self.kick(self.vq)
            self._queued = 0

    def reap(self) -> list[BlkDone]:
        """The requests the device has finished since the last reap; their slots are free again."""
        done = []
        for slot, written in self.vq.take_used():
            done.append(BlkDone(slot, self.memory.read(self.vq.addr(slot, self.STATUS), 1)[0], written))
            self.vq.free.append(slot)
        return done

    def read_data(self, slot: int, nbytes: int) -> bytes:
        return self.memory.read(self.vq.addr(slot, self.DATA), nbytes)

    def request(self, kind: int, sector: int = 0, nbytes: int = 0, data: Optional[bytes] = None,
                timeout: float = 5.0) -> BlkDone:
        """One request, sent and waited for; what the device made of it."""
        slot = self.submit(kind, sector, nbytes, data)
        self.kick_requests()
        done: list[BlkDone] = []
        self.wait_for(lambda: bool(done.extend(self.reap()) or done), timeout, f"virtio-blk request type {kind}")
        (result,) = done
        assert result.slot == slot
        return result

    def read(self, sector: int, nbytes: int, timeout: float = 5.0) -> bytes:
        done = self.request(VIRTIO_BLK_T_IN, sector, nbytes, timeout=timeout)
        if done.status != VIRTIO_BLK_S_OK:
            raise DeviceError(f"read of {nbytes} bytes at sector {sector}: status {done.status}")
        return self.read_data(done.slot, nbytes)

    def write(self, sector: int, data: bytes, timeout: float = 5.0) -> int:
        """The request's status byte (VIRTIO_BLK_S_OK, or the device's refusal)."""
        return self.request(VIRTIO_BLK_T_OUT, sector, data=data, timeout=timeout).status

    def flush(self, timeout: float = 5.0) -> int:
        return self.request(VIRTIO_BLK_T_FLUSH, timeout=timeout).status


class RngRingDriver(LegacyVirtioDriver):
    """A minimal legacy virtio-rng driver: every slot of the input queue posted as one device-writable
    buffer of ``buffer_size`` bytes, all posted again (one kick) once all came back; bytes in used-ring order.

    Why in rounds: QEMU's virtio-rng asks its backend for every posted buffer at each kick, so
    a kick while a request is out asks twice for the same buffers, and bytes of the second
    answer that find no buffer are dropped.
    """

    PCI_DEVICE_ID = VIRTIO_PCI_DEVICE_RNG
    NAME = "virtio-rng"

    def __init__(self, device: PciFunction, memory: GuestMemory, *, buffer_size: int = 4096, **kwargs) -> None:
        super().__init__(device, memory, **kwargs)
        self.buffer_size = buffer_size
        self.input: Optional[Virtqueue] = None

    def queues(self) -> list[tuple[int, Sequence[Segment]]]:
        return [(VIRTIO_RNG_QUEUE, (Segment(self.buffer_size, True),))]

    def ready(self, queues: list[Virtqueue]) -> None:
        (self.input,) = queues
        for slot in range(self.input.slots):
            self.input.add(slot)
        self.input.free.clear()
        self.input.publish()
        # before DRIVER_OK, as the 2.6 drivers kick: setting DRIVER_OK is what starts the device
        # (a kick after it would be a second request for the same buffers, see above)
        self.kick(self.input)

    def poll(self) -> bytes:
        """What the device has written so far; its buffers go straight back to it."""
        q = self.input
        assert q is not None, "start() first"
        out = bytearray()
        for slot, length in q.take_used():
            if length > self.buffer_size:
                raise DeviceError(f"used length {length} exceeds the {self.buffer_size}-byte buffer")
            out += self.memory.read(q.addr(slot, 0), length)
            q.free.append(slot)
        if len(q.free) == q.slots:
            while q.free:
                q.add(q.free.popleft())
            q.publish()
            self.kick(q)
        return bytes(out)

    def read(self, n: int, timeout: float = 5.0) -> bytes:
        """Wait until ``n`` bytes have come; return them (more if a buffer held more)."""
        return bytes(self.collect(self.poll, bytearray(), n, timeout, f"{n} bytes of entropy"))
