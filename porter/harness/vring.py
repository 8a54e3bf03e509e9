"""The legacy split virtqueue: its layout in guest memory, reading a descriptor chain, and the device's side of a queue.

One reader of chains serves every device model and the DMA guard, so what
counts as a well-formed chain (ids in range, no loops, indirect tables as
the spec allows them, readable buffers before writable ones) is decided in
one place; each caller supplies its own test of an address range (inside
guest memory for a device, inside the DDE's arena for the guard).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Optional

from porter.harness.memory import store_u16
from porter.harness.virtio_pci import VIRTIO_PCI_QUEUE_ADDR_SHIFT, VIRTIO_PCI_VRING_ALIGN

VRING_DESC_F_NEXT = 1
VRING_DESC_F_WRITE = 2
VRING_DESC_F_INDIRECT = 4
VRING_AVAIL_F_NO_INTERRUPT = 1
VRING_USED_F_NO_NOTIFY = 1

VRING_DESC = struct.Struct("<QIHH")     # addr, len, flags, next
VRING_USED_ELEM = struct.Struct("<II")  # id, len
U16 = struct.Struct("<H")
MAX_INDIRECT = 1024                     # QEMU's VIRTQUEUE_MAX_SIZE bounds indirect tables the same way
MAX_QUEUE_SIZE = 32768                  # the legacy interface's limit


def align(value: int, to: int) -> int:
    return (value + to - 1) & ~(to - 1)


@dataclass(frozen=True)
class VringLayout:
    """Where the parts of a legacy split ring of ``num`` entries lie when it starts at ``desc``."""
    num: int
    desc: int
    avail: int
    used: int
    size: int

    @classmethod
    def at(cls, base: int, num: int, ring_align: int = VIRTIO_PCI_VRING_ALIGN) -> VringLayout:
        """The legacy spec's layout (virtq_size): the used ring starts on the next ``ring_align`` boundary.

        Space for used_event/avail_event is reserved as the spec does, even
        without EVENT_IDX, so the layout is the same either way.
        """
        if num <= 0 or num & (num - 1):
            raise ValueError(f"queue size must be a power of two, not {num}")
        if base % ring_align:
            raise ValueError(f"ring address {base:#x} is not {ring_align}-aligned")
        avail = base + VRING_DESC.size * num
        used = align(avail + 2 * (3 + num), ring_align)
        end = align(used + 2 * 3 + VRING_USED_ELEM.size * num, ring_align)
        return cls(num=num, desc=base, avail=avail, used=used, size=end - base)

    @classmethod
    def from_pfn(cls, pfn: int, num: int) -> VringLayout:
        """The ring a legacy driver placed by writing ``pfn`` to QUEUE_PFN."""
        return cls.at(pfn << VIRTIO_PCI_QUEUE_ADDR_SHIFT, num)

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


@dataclass(frozen=True)
class Chain:
    """A well-formed descriptor chain: its head and its buffers (guest-physical addr, len)."""
    head: int
    readable: tuple[tuple[int, int], ...]
    writable: tuple[tuple[int, int], ...]
    descriptors: tuple[int, ...] = ()      # ids in the ring's own table (the head, its NEXTs)

    @property
    def capacity(self) -> int:
        return sum(length for _, length in self.writable)

    @property
    def readable_len(self) -> int:
        return sum(length for _, length in self.readable)


class ChainError(Exception):
    """A descriptor that breaks the ring contract, or names memory its reader refuses.

    ``index`` is the descriptor's id in the ring's table, ``entry`` its
    position in the indirect table it sits in (None outside one), and
    ``table`` that table's address.
    """

    def __init__(self, head: int, index: int, addr: int, length: int, problem: str,
                 entry: Optional[int] = None, table: Optional[int] = None) -> None:
        self.head, self.index, self.addr, self.length = head, index, addr, length
        self.problem, self.entry, self.table = problem, entry, table
        super().__init__(f"{self.where} (chain head {head}) addr {addr:#x} len {length}: {problem}")

    @property
    def label(self) -> str:
        """``7``, or ``7 -> indirect 2`` for entry 2 of descriptor 7's indirect table."""
        return str(self.index) if self.entry is None else f"{self.index} -> indirect {self.entry}"

    @property
    def where(self) -> str:
        if self.entry is None:
            return f"descriptor {self.index}"
        return f"descriptor {self.entry} of the indirect table at {self.table:#x} (descriptor {self.index})"


# A reader's test of a range the device would touch: why not, or None. ``kind``
# is "buffer" or "indirect table".
RangeCheck = Callable[[int, int, str], Optional[str]]


def read_chain(ram, table: int, num: int, head: int, check_range: RangeCheck, *,
               indirect_ok: bool = True, max_indirect: int = MAX_INDIRECT) -> Chain:
    """Follow the chain at ``head`` in the ``num``-entry descriptor table at ``table`` of ``ram``.

    ``ram`` is guest memory as a buffer (physical address = offset); the
    ring's own table must lie inside it. Raises ChainError at the first
    descriptor that is malformed or that ``check_range`` refuses. (Every
    notify of every queue comes through here: the loop is kept plain.)
    """
    if not 0 <= head < num:
        raise ChainError(head, head, 0, 0, f"descriptor id beyond the ring of {num}")
    unpack = VRING_DESC.unpack_from
    size = VRING_DESC.size
    readable: list[tuple[int, int]] = []
    writable: list[tuple[int, int]] = []
    ids: list[int] = []
    at, count = table, num
    index, entry, seen = head, None, 0          # entry: position inside an indirect table
    while True:
        addr, length, flags, nxt = unpack(ram, at + size * (index if entry is None else entry))
        if flags & VRING_DESC_F_INDIRECT:
            problem = None
            if entry is not None:
                problem = "indirect descriptor inside an indirect table"
            elif seen:
                problem = "indirect descriptor in the middle of a chain"
            elif not indirect_ok:
                problem = "indirect descriptor, but VIRTIO_RING_F_INDIRECT_DESC was not negotiated"
            elif flags & VRING_DESC_F_NEXT:
                problem = "indirect descriptor with NEXT set"
            elif length == 0 or length % size or length // size > max_indirect:
                problem = (f"indirect table length is not a multiple of {size} "
                           f"between 1 and {max_indirect} entries")
            else:
                problem = check_range(addr, length, "indirect table")
            if problem:
                raise _chain_error(head, index, entry, at, addr, length, problem)
            ids.append(index)
            at, count, entry = addr, length // size, 0
            continue
        problem = check_range(addr, length, "buffer")
        if problem:
            raise _chain_error(head, index, entry, at, addr, length, problem)
        if flags & VRING_DESC_F_WRITE:
            writable.append((addr, length))
        elif writable:
            raise _chain_error(head, index, entry, at, addr, length,
                               "device-readable buffer after a device-writable one")
        else:
            readable.append((addr, length))
        if entry is None:
            ids.append(index)
        seen += 1
        if not flags & VRING_DESC_F_NEXT:
            return Chain(head, tuple(readable), tuple(writable), tuple(ids))
        if nxt >= count:
            raise _chain_error(head, index, entry, at, addr, length, f"next {nxt} is beyond the {count}-entry table")
        if seen >= count:
            raise _chain_error(head, index, entry, at, addr, length,
                               f"chain is longer than its {count}-entry table: it loops")
        if entry is None:
            index = nxt
        else:
            entry = nxt


def _chain_error(head: int, index: int, entry: Optional[int], at: int, addr: int, length: int,
                 problem: str) -> ChainError:
    return ChainError(head, index, addr, length, problem, entry, at if entry is not None else None)


class RingViolation(Exception):
    """The driver broke the ring contract; the message names the queue, and the descriptor, addr and len."""


@dataclass
class UsedFaults:
    """How a hostile device corrupts what it reports in the used ring (see ``virtio_device.Faults``)."""
    used_idx_jump: int = 0          # extra used.idx advance per update (phantom entries)
    bad_used_id: bool = False       # the id is queue size + head: out of range
    unavailable_used_id: bool = False   # the id is in range but names no chain the driver made available
    duplicate_used: bool = False    # every used entry is reported twice
    used_idx_backwards: bool = False    # used.idx moves back by one instead of forward
    oversize_len: bool = False      # len = writable bytes of the chain + 1
    short_len: bool = False         # len = half of what was written


class DeviceQueue:
    """The device's side of one queue: where the ring is, what it has taken and returned.

    Indices are the free-running u16s of the spec. Methods that read the
    ring take guest memory as a buffer and raise RingViolation with the
    queue named.
    """

    def __init__(self, index: int, name: str, num: int) -> None:
        self.index, self.name, self.num = index, name, num
        self.pfn = 0
        self.layout: Optional[VringLayout] = None
        self.last_avail = 0          # next avail entry the device takes
        self.used_idx = 0            # the device's used.idx
        self.unsignalled = 0         # used entries published since the last interrupt decision
        self.broken: Optional[str] = None

    def __repr__(self) -> str:
        return f"DeviceQueue({self.index}, {self.name!r}, num={self.num}, pfn={self.pfn:#x})"

    @property
    def label(self) -> str:
        return f"queue {self.index} ({self.name})"

    def set_pfn(self, pfn: int) -> None:
        # PFN 0 takes the queue out of service (the 2.6 driver's del_vq does this).
        self.pfn = pfn
        self.layout = VringLayout.from_pfn(pfn, self.num) if pfn else None

    def check_ring(self, ram_size: int) -> None:
        layout = self.layout
        if layout.desc + layout.size > ram_size:
            raise RingViolation(f"{self.label}: ring at {layout.desc:#x} ({layout.size} bytes, PFN "
                                f"{self.pfn:#x}) lies outside guest memory of {ram_size:#x} bytes")

    def avail_count(self, ram) -> int:
        idx = U16.unpack_from(ram, self.layout.avail_idx)[0]
        count = (idx - self.last_avail) & 0xFFFF
        if count > self.num:
            raise RingViolation(f"{self.label}: avail index moved from {self.last_avail} to {idx}, "
                                f"{count} entries in a {self.num}-entry ring")
        return count

    def avail_head(self, ram, position: int) -> int:
        head = U16.unpack_from(ram, self.layout.avail_ring(position))[0]
        if head >= self.num:
            raise RingViolation(f"{self.label}: avail ring entry {position % self.num} names descriptor "
                                f"{head}, beyond the queue size {self.num}")
        return head

    def chain(self, ram, ahead: int, check_range: RangeCheck, *, indirect_ok: bool) -> Chain:
        """The chain ``ahead`` entries past the next one the device would take (not taken yet)."""
        head = self.avail_head(ram, self.last_avail + ahead)
        try:
            return read_chain(ram, self.layout.desc, self.num, head, check_range, indirect_ok=indirect_ok)
        except ChainError as e:
            raise RingViolation(f"{self.label}: {e}") from None

    def take(self, count: int = 1) -> None:
        self.last_avail = (self.last_avail + count) & 0xFFFF

    def put_used(self, ram, entries: list[tuple[Chain, int]], faults: UsedFaults) -> None:
        """Publish used entries (chain, bytes written) at once: idx moves after all entries are stored."""
        out: list[tuple[int, int]] = []
        for chain, written in entries:
            head = chain.head
            if faults.bad_used_id:
                head = self.num + chain.head
            elif faults.unavailable_used_id:
                head = self._unavailable_id(ram, entries, head)
            length = (chain.capacity + 1 if faults.oversize_len
                      else written // 2 if faults.short_len else written)
            out += [(head, length)] * (2 if faults.duplicate_used else 1)
        for i, (head, length) in enumerate(out):
            VRING_USED_ELEM.pack_into(ram, self.layout.used_ring(self.used_idx + i), head, length)
        self.used_idx = (self.used_idx + len(out) + max(0, faults.used_idx_jump)) & 0xFFFF
        shown = (self.used_idx - len(out) - 1) & 0xFFFF if faults.used_idx_backwards else self.used_idx
        store_u16(ram, self.layout.used_idx, shown)
        self.unsignalled += len(entries)

    def _unavailable_id(self, ram, entries: list[tuple[Chain, int]], fallback: int) -> int:
        """An id in range that heads no chain the driver has given the device and not got back."""
        outstanding = {chain.head for chain, _ in entries}
        avail = U16.unpack_from(ram, self.layout.avail_idx)[0]
        for position in range(self.last_avail, self.last_avail + ((avail - self.last_avail) & 0xFFFF)):
            outstanding.add(U16.unpack_from(ram, self.layout.avail_ring(position))[0])
        # a descriptor inside one of the chains is never a head; else any id nobody holds
        for chain, _ in entries:
            if len(chain.descriptors) > 1:
                return chain.descriptors[1]
        return next((i for i in range(self.num) if i not in outstanding), fallback)

    def wants_interrupt(self, ram, notify_on_empty: bool) -> bool:
        """After used entries: does the driver want an interrupt (NO_INTERRUPT, NOTIFY_ON_EMPTY)?"""
        self.unsignalled = 0
        flags = U16.unpack_from(ram, self.layout.avail)[0]
        empty = U16.unpack_from(ram, self.layout.avail_idx)[0] == self.last_avail
        return not flags & VRING_AVAIL_F_NO_INTERRUPT or (empty and notify_on_empty)
