"""The machine the driver host runs on: physical memory, a PCI bus whose config
space and BARs the harness owns, interrupt lines as eventfds, and the routing of
the driver's port I/O to device backends. Every access can be recorded."""

import os
import threading
from dataclasses import dataclass, field

from .memory import GuestMemory
from .pci import CONFIG_SPACE_SIZE, PCI_INTERRUPT_LINE, PciFunction, assign_io_bar

IO_BASE = 0xC000        # first I/O window, as a PC BIOS would place it
IO_STRIDE = 0x100
FIRST_IRQ = 10


@dataclass
class PciSlot:
    device: PciFunction
    bus: int
    slot: int
    func: int
    io_base: int
    io_size: int
    irq: int
    irq_fd: int              # the device writes it to raise the line
    resample_fd: int         # the driver side writes it after handling (level-triggered INTx)


@dataclass(frozen=True)
class Access:
    """One register access of the driver, as the harness saw it."""
    kind: str                # "pio" or "cfg"
    write: bool
    where: int               # port, or config offset
    size: int
    value: int
    slot: int = 0


@dataclass
class Machine:
    memory: GuestMemory
    arena_size: int = 0                        # the DDE's DMA memory from 0 (default: all of it)
    slots: list[PciSlot] = field(default_factory=list)
    trace: list[Access] | None = None          # set to [] to record every access
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        self.arena_size = self.arena_size or self.memory.size

    def attach(self, device: PciFunction) -> PciSlot:
        """Plug a device in: program its I/O BAR, its interrupt line, and its irqfd."""
        n = len(self.slots)
        base = IO_BASE + IO_STRIDE * n
        size = assign_io_bar(device, base)
        irq = FIRST_IRQ + n
        device.cfg_write(PCI_INTERRUPT_LINE, irq, 1)
        irq_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        resample_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        if hasattr(device, "set_irqfd"):
            device.set_irqfd(irq_fd, resample_fd)
        slot = PciSlot(device, 0, 3 + n, 0, base, size, irq, irq_fd, resample_fd)
        self.slots.append(slot)
        return slot

    def close(self) -> None:
        for s in self.slots:
            for fd in (s.irq_fd, s.resample_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.slots.clear()

    # -- what the driver host asks over its io channel
    def pci_device(self, nr: int) -> PciSlot | None:
        return self.slots[nr] if 0 <= nr < len(self.slots) else None

    def find(self, bus: int, slot: int, func: int) -> PciSlot | None:
        return next((s for s in self.slots if (s.bus, s.slot, s.func) == (bus, slot, func)), None)

    def cfg_read(self, bus, slot, func, pos, size) -> int | None:
        s = self.find(bus, slot, func)
        if s is None or size not in (1, 2, 4) or pos < 0 or pos + size > CONFIG_SPACE_SIZE:
            return None
        value = s.device.cfg_read(pos, size)
        self._record("cfg", False, pos, size, value, s.slot)
        return value

    def cfg_write(self, bus, slot, func, pos, size, value) -> bool:
        s = self.find(bus, slot, func)
        if s is None or size not in (1, 2, 4) or pos < 0 or pos + size > CONFIG_SPACE_SIZE:
            return False
        self._record("cfg", True, pos, size, value, s.slot)
        s.device.cfg_write(pos, value, size)
        return True

    def _decoder(self, port: int, size: int) -> PciSlot | None:
        return next((s for s in self.slots if s.io_base <= port and port + size <= s.io_base + s.io_size), None)

    def pio_read(self, port: int, size: int) -> int:
        s = self._decoder(port, size)
        if s is None:
            self.errors.append(f"read of {size} bytes at port {port:#x}: no device decodes it")
            return (1 << (8 * size)) - 1          # what a PC bus returns
        value = s.device.io_read(port, size)
        self._record("pio", False, port - s.io_base, size, value, s.slot)
        return value

    def pio_write(self, port: int, size: int, value: int, posted: bool = False) -> None:
        """A port write; ``posted``: the driver does not wait for it, so neither need the device."""
        s = self._decoder(port, size)
        if s is None:
            self.errors.append(f"write of {size} bytes at port {port:#x}: no device decodes it")
            return
        self._record("pio", True, port - s.io_base, size, value, s.slot)
        if posted and hasattr(s.device, "io_write_posted"):
            s.device.io_write_posted(port, value, size)
        else:
            s.device.io_write(port, value, size)

    def _record(self, kind, write, where, size, value, slot) -> None:
        if self.trace is not None:
            with self._lock:
                self.trace.append(Access(kind, write, where, size, value, slot))
