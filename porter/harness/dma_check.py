"""DMA safety: every address a driver gives a legacy virtio device (rings,
descriptors, indirect tables, buffers) must lie inside the arena and in pages
the DDE allocated. The guard sits between the machine and the device backend,
reads each queue's new descriptor chains (with the same reader as the device
models) when the driver notifies and when its interrupt handler reads the ISR,
and refuses to pass on a notify that would make the device touch memory it
must not."""

import threading
from dataclasses import dataclass, field
from typing import Optional

from .contract import ARENA_MAP_PAGES, PAGE_SIZE as PAGE
from .memory import GuestMemory
from .pci import PCI_BASE_ADDRESS_0
from .virtio_pci import (VIRTIO_PCI_ISR, VIRTIO_PCI_QUEUE_NOTIFY, VIRTIO_PCI_QUEUE_NUM, VIRTIO_PCI_QUEUE_PFN,
                         VIRTIO_PCI_QUEUE_SEL, VIRTIO_PCI_STATUS)
from .vring import U16, ChainError, VringLayout, read_chain



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
    layout: VringLayout
    checked: int = 0          # avail index up to which chains were checked


@dataclass
class DmaGuard:
    """A PciFunction in front of a legacy virtio device (QEMU's, or a sim model)."""
    device: object
    memory: GuestMemory
    violations: list[DmaViolation] = field(default_factory=list)
    chains_checked: int = 0
    # chains the device had used, and the driver may have freed, before any
    # notify showed them to the guard (see _check_queue): not checkable
    chains_used_unseen: int = 0
    io_base: int = 0
    _selected: int = 0
    _queues: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
        if port - self.io_base == VIRTIO_PCI_ISR:
            # the driver's interrupt handler: walk what was added since the last
            # notify now, before the driver reaps used chains and frees them
            with self._lock:
                for q in list(self._queues):
                    self._check_queue(q)
        return self.device.io_read(port, size)

    def io_write(self, port: int, value: int, size: int) -> None:
        off = port - self.io_base
        with self._lock:
            if off == VIRTIO_PCI_QUEUE_SEL:
                self._selected = value
            elif off == VIRTIO_PCI_QUEUE_PFN:
                self._queue_address(value)
            elif off == VIRTIO_PCI_STATUS and value == 0:
                self._queues.clear()             # reset: the rings are gone
            elif off == VIRTIO_PCI_QUEUE_NOTIFY:
                if not self._check_queue(value):
                    return                       # the device never sees this kick
        self.device.io_write(port, value, size)

    def _queue_address(self, pfn: int) -> None:
        if pfn == 0:
            self._queues.pop(self._selected, None)
            return
        num = self.device.io_read(self.io_base + VIRTIO_PCI_QUEUE_NUM, 2)
        layout = VringLayout.from_pfn(pfn, num)
        self._queues[self._selected] = _Queue(layout)
        problem = self.problem(layout.desc, layout.size)
        if problem:
            self.violations.append(DmaViolation(self._selected, "ring", layout.desc, layout.size, problem))

    # -- the walk
    def _check_queue(self, q: int) -> bool:
        state = self._queues.get(q)
        if state is None:
            self.violations.append(DmaViolation(q, "-", 0, 0, "notified, but the queue has no ring address"))
            return False
        before = len(self.violations)
        lay, ram = state.layout, self.memory.buffer
        if lay.desc + lay.size > self.memory.size:
            return False                         # reported when the ring was placed
        avail_idx = U16.unpack_from(ram, lay.avail_idx)[0]
        # While a device suppresses notifications (VRING_USED_F_NO_NOTIFY) it goes
        # on taking chains the driver adds without a kick, so a chain can be used,
        # and its buffers freed and reused, before the next notify shows it here.
        # A device takes chains in ring order and returns at most as many as it
        # took, so the positions before its used index are such chains.
        used_idx = U16.unpack_from(ram, lay.used_idx)[0]
        while state.checked != avail_idx:
            if 0 < (used_idx - state.checked) & 0xFFFF <= lay.num:
                self.chains_used_unseen += 1
            else:
                head = U16.unpack_from(ram, lay.avail_ring(state.checked))[0]
                self._check_chain(q, lay, head)
                self.chains_checked += 1
            state.checked = (state.checked + 1) & 0xFFFF
        return len(self.violations) == before

    def _check_chain(self, q: int, lay: VringLayout, head: int) -> None:
        def check(addr: int, length: int, kind: str) -> Optional[str]:
            problem = self.problem(addr, length)
            return problem if problem is None or kind == "buffer" else f"({kind}) {problem}"

        try:
            read_chain(self.memory.buffer, lay.desc, lay.num, head, check)
        except ChainError as e:
            self.violations.append(DmaViolation(q, e.label, e.addr, e.length, e.problem))

    def problem(self, addr: int, length: int) -> str | None:
        """Why the device must not access [addr, addr+length), or None."""
        if length == 0:
            return "is empty"
        if addr < PAGE:
            return "lies in physical page 0: a NULL page's address (page_to_phys(NULL))"
        if addr + length > self.memory.size:
            return (f"lies outside the arena ({self.memory.size} bytes)"
                    + (": virt_to_phys() failed (-1), e.g. a stack address" if addr >= 0xFFFFF000 else ""))
        bitmap = self.memory.buffer
        for p in range(addr // PAGE, min((addr + length - 1) // PAGE + 1, ARENA_MAP_PAGES)):
            if not bitmap[p // 8] >> (p % 8) & 1:
                return f"touches page {p}, which the DDE has not allocated"
        return None
