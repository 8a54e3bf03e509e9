"""DMA safety: every address a driver gives a legacy virtio device (rings,
descriptors, indirect tables, buffers) must lie inside the arena and in pages
the DDE allocated, and the device must not see a chain before it is checked.

The guard sits between the machine and the device backend and gives the
device shadow rings, in guest memory past the DDE's arena: the device reads
only what the guard copied there, after reading each new chain of the
driver's ring (with the device models' own chain reader) when the driver
notifies; it copies what the device used back into the driver's ring when
the driver's interrupt handler reads the ISR. A chain that fails the check
never reaches the device, and its queue stops there, as behind an IOMMU
that faulted. So the device cannot run ahead of the guard (QEMU takes chains
without a notify while it suppresses them), the driver always notifies (its
used ring never says NO_NOTIFY), and the device always interrupts (its avail
ring never says NO_INTERRUPT); the guard, as the shadow rings' driver, does
not pass on a notify while the device says it polls (VRING_USED_F_NO_NOTIFY
in the shadow used ring). EVENT_IDX is not offered through the guard:
its event indices would have to be mirrored both ways.
"""

import threading
from dataclasses import dataclass, field
from typing import Optional

from .contract import ARENA_MAP_PAGES, PAGE_SIZE as PAGE
from .memory import GuestMemory, store_u16
from .pci import PCI_BASE_ADDRESS_0
from .virtio_pci import (VIRTIO_PCI_HOST_FEATURES, VIRTIO_PCI_ISR, VIRTIO_PCI_QUEUE_ADDR_SHIFT,
                         VIRTIO_PCI_QUEUE_NOTIFY, VIRTIO_PCI_QUEUE_NUM, VIRTIO_PCI_QUEUE_PFN, VIRTIO_PCI_QUEUE_SEL,
                         VIRTIO_PCI_STATUS, VIRTIO_PCI_VRING_ALIGN, VIRTIO_RING_F_EVENT_IDX, bit)
from .vring import U16, VRING_DESC, VRING_USED_ELEM, VRING_USED_F_NO_NOTIFY, ChainError, VringLayout, read_chain

SHADOW_AREA = 1 << 20            # guest memory past the arena that holds the shadow rings


@dataclass(frozen=True)
class DmaViolation:
    queue: int
    descriptor: str           # "7", or "7 -> indirect 2", or "ring"
    addr: int
    length: int
    problem: str

    def __str__(self):
        return (f"queue {self.queue} descriptor {self.descriptor}: [{self.addr:#x}, +{self.length}) "
                f"{self.problem}")


@dataclass
class _Queue:
    driver: VringLayout       # the ring the driver placed (in the arena)
    shadow: VringLayout       # the ring the device is told about (past the arena)
    checked: int = 0          # driver avail index up to which chains were checked and copied
    used: int = 0             # shadow used index up to which entries were copied back
    stopped: bool = False     # a chain failed the check: nothing more reaches the device


@dataclass
class DmaGuard:
    """A PciFunction in front of a legacy virtio device (QEMU's, or a sim model).

    ``arena_size``: the DDE's DMA arena, from guest-physical 0 (default: all of
    ``memory`` but the shadow area at its end)."""
    device: object
    memory: GuestMemory
    arena_size: int = 0
    violations: list[DmaViolation] = field(default_factory=list)
    chains_checked: int = 0
    io_base: int = 0
    _selected: int = 0
    _queues: dict = field(default_factory=dict)
    _next_shadow: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _fence: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        if not self.arena_size:
            self.arena_size = self.memory.size - SHADOW_AREA
        if not 0 < self.arena_size <= self.memory.size - SHADOW_AREA:
            raise ValueError(f"guest memory of {self.memory.size:#x} bytes leaves no {SHADOW_AREA:#x}-byte "
                             f"shadow area after an arena of {self.arena_size:#x}")
        self._next_shadow = self.arena_size

    def __getattr__(self, name):              # set_irqfd, reset, netdev_path, ... of the device
        if name.startswith("_") or name == "device":
            raise AttributeError(name)
        return getattr(self.device, name)

    # -- config space: remember where BAR0 went
    def cfg_read(self, offset: int, size: int) -> int:
        return self.device.cfg_read(offset, size)

    def cfg_write(self, offset: int, value: int, size: int) -> None:
        if offset == PCI_BASE_ADDRESS_0 and size == 4 and value != 0xFFFFFFFF:
            self.io_base = value & ~0x3
        self.device.cfg_write(offset, value, size)

    # -- registers
    def io_read(self, port: int, size: int) -> int:
        off = port - self.io_base
        value = self.device.io_read(port, size)
        with self._lock:
            if off == VIRTIO_PCI_ISR:
                # the driver's interrupt handler: what the device used becomes visible to it now
                for q in self._queues.values():
                    self._copy_used(q)
            elif off == VIRTIO_PCI_HOST_FEATURES:
                value &= ~bit(VIRTIO_RING_F_EVENT_IDX)
            elif off == VIRTIO_PCI_QUEUE_PFN:
                q = self._queues.get(self._selected)
                if q is not None and value == q.shadow.desc >> VIRTIO_PCI_QUEUE_ADDR_SHIFT:
                    value = q.driver.desc >> VIRTIO_PCI_QUEUE_ADDR_SHIFT   # the driver sees its own ring
        return value

    def io_write(self, port: int, value: int, size: int) -> None:
        value = self._passes(port, value)
        if value is not None:
            self.device.io_write(port, value, size)

    def io_write_posted(self, port: int, value: int, size: int) -> None:
        """A write the driver does not wait for: checked the same, passed on posted if the device can."""
        value = self._passes(port, value)
        if value is not None:
            getattr(self.device, "io_write_posted", self.device.io_write)(port, value, size)

    def _passes(self, port: int, value: int) -> Optional[int]:
        """The value the device gets for this write (a shadow ring's PFN for the driver's), or None."""
        off = port - self.io_base
        with self._lock:
            if off == VIRTIO_PCI_QUEUE_SEL:
                self._selected = value
            elif off == VIRTIO_PCI_QUEUE_PFN:
                return self._queue_address(value)
            elif off == VIRTIO_PCI_STATUS and value == 0:
                self._queues.clear()             # reset: the rings are gone
                self._next_shadow = self.arena_size
            elif off == VIRTIO_PCI_QUEUE_NOTIFY:
                q = self._queues.get(value)
                if q is None:
                    self.violations.append(DmaViolation(value, "-", 0, 0,
                                                        "notified, but the queue has no ring address"))
                    return None
                if not self._copy_avail(value, q):
                    return None                  # the device never hears of a chain that failed
                if self._device_polls(q):
                    return None                  # it will see the new chains without a notify
        return value

    def _device_polls(self, q: _Queue) -> bool:
        """Whether the device asked not to be notified (VRING_USED_F_NO_NOTIFY in the shadow ring).

        The driver always notifies (its own used ring never says NO_NOTIFY:
        the guard cannot see it fill its ring); the guard is the shadow ring's
        driver and suppresses the notify as a driver does: after publishing
        the avail index, a full fence, then the flag. A device that clears
        the flag re-checks the avail ring after a fence of its own, so a chain
        published before the flag was read is never missed. The fence: a lock
        acquired and released is a locked instruction on x86, which orders the
        store before the load."""
        self._fence.acquire()
        self._fence.release()
        return bool(U16.unpack_from(self.memory.buffer, q.shadow.used)[0] & VRING_USED_F_NO_NOTIFY)

    def _queue_address(self, pfn: int) -> Optional[int]:
        if pfn == 0:
            self._queues.pop(self._selected, None)
            return 0
        num = self.device.io_read(self.io_base + VIRTIO_PCI_QUEUE_NUM, 2)
        driver = VringLayout.from_pfn(pfn, num)
        problem = self.problem(driver.desc, driver.size)
        if problem:
            self.violations.append(DmaViolation(self._selected, "ring", driver.desc, driver.size, problem))
            return None                          # the device never gets a ring
        base = -(-self._next_shadow // VIRTIO_PCI_VRING_ALIGN) * VIRTIO_PCI_VRING_ALIGN
        shadow = VringLayout.at(base, num)
        if shadow.desc + shadow.size > self.memory.size:
            raise RuntimeError(f"the DMA guard's shadow area ({SHADOW_AREA:#x} bytes) is full")
        self._next_shadow = shadow.desc + shadow.size
        self.memory.fill(shadow.desc, shadow.size)
        self._queues[self._selected] = _Queue(driver, shadow)
        return shadow.desc >> VIRTIO_PCI_QUEUE_ADDR_SHIFT

    def avail_index(self, queue: int) -> int:
        """The avail index of the driver's ring ``queue`` (how many chains it has ever given)."""
        return U16.unpack_from(self.memory.buffer, self._queues[queue].driver.avail_idx)[0]

    # -- the copies
    def _copy_avail(self, index: int, q: _Queue) -> bool:
        """Check the driver's new chains and show the good ones to the device; False once one failed."""
        if q.stopped:
            return False
        ram, drv, sh = self.memory.buffer, q.driver, q.shadow
        avail_idx = U16.unpack_from(ram, drv.avail_idx)[0]
        pos = q.checked
        while pos != avail_idx:
            if (avail_idx - pos) & 0xFFFF > drv.num:
                break                            # an avail index no ring allows: the device's to judge
            head = U16.unpack_from(ram, drv.avail_ring(pos))[0]
            chain = self._check_chain(index, drv, head)
            if chain is None:
                q.stopped = True
                break
            for d in chain.descriptors:          # the ring's own entries; indirect tables stay put
                ram[sh.desc + VRING_DESC.size * d:sh.desc + VRING_DESC.size * (d + 1)] = \
                    ram[drv.desc + VRING_DESC.size * d:drv.desc + VRING_DESC.size * (d + 1)]
            store_u16(ram, sh.avail_ring(pos), head)
            pos = (pos + 1) & 0xFFFF
        # the entries first, then the index (x86 keeps stores in order)
        store_u16(ram, sh.avail_idx, pos)
        q.checked = pos
        return not q.stopped

    def _copy_used(self, q: _Queue) -> None:
        """What the device put in the shadow used ring, as it put it (a hostile device's lies included)."""
        ram, drv, sh = self.memory.buffer, q.driver, q.shadow
        used_idx = U16.unpack_from(ram, sh.used_idx)[0]
        if 0 < (used_idx - q.used) & 0xFFFF <= drv.num:
            for pos in range(q.used, q.used + ((used_idx - q.used) & 0xFFFF)):
                src, dst = sh.used_ring(pos), drv.used_ring(pos)
                ram[dst:dst + VRING_USED_ELEM.size] = ram[src:src + VRING_USED_ELEM.size]
        store_u16(ram, drv.used_idx, used_idx)
        q.used = used_idx

    # -- the check
    def _check_chain(self, q: int, lay: VringLayout, head: int):
        self.chains_checked += 1
        try:
            return read_chain(self.memory.buffer, lay.desc, lay.num, head, self._range_check)
        except ChainError as e:
            self.violations.append(DmaViolation(q, e.label, e.addr, e.length, e.problem))
            return None

    def _range_check(self, addr: int, length: int, kind: str) -> Optional[str]:
        problem = self.problem(addr, length)
        return problem if problem is None or kind == "buffer" else f"({kind}) {problem}"

    def problem(self, addr: int, length: int) -> str | None:
        """Why the device must not access [addr, addr+length), or None."""
        if length == 0:
            return "is empty"
        if addr < PAGE:
            return "lies in physical page 0: a NULL page's address (page_to_phys(NULL))"
        end = addr + length
        if end > self.arena_size:
            return (f"lies outside the arena ({self.arena_size} bytes)"
                    + (": virt_to_phys() failed (-1), e.g. a stack address" if addr >= 0xFFFFF000 else ""))
        bitmap = self.memory.buffer
        for p in range(addr // PAGE, min((end - 1) // PAGE + 1, ARENA_MAP_PAGES)):
            if not bitmap[p >> 3] >> (p & 7) & 1:
                return f"touches page {p}, which the DDE has not allocated"
        return None
