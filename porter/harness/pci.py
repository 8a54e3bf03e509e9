"""A conventional PCI function as the harness sees it: config space, one I/O BAR, INTx.

``PciFunction`` is what a device backend offers (QEMU's device, a sim model,
the DMA guard in front of either). ``ConfigSpace`` is the 256-byte config
space a modelled device keeps: read-only identity, a write mask, BAR0 as an
I/O BAR of a given size, the command register's decode and INTx-disable
bits, and the status register's interrupt bit. ``assign_io_bar`` is what
firmware does to a function before a driver sees it.
"""

from __future__ import annotations

import struct
from typing import Protocol


class PciFunction(Protocol):
    """What a device backend offers the harness: config space and I/O ports (bus addresses)."""

    def cfg_read(self, offset: int, size: int) -> int: ...
    def cfg_write(self, offset: int, value: int, size: int) -> None: ...
    def io_read(self, port: int, size: int) -> int: ...
    def io_write(self, port: int, value: int, size: int) -> None: ...


# -- config space registers (the type 0 header a legacy device needs) ---------
PCI_VENDOR_ID = 0x00
PCI_DEVICE_ID = 0x02
PCI_COMMAND = 0x04
PCI_COMMAND_IO = 0x1
PCI_COMMAND_MEMORY = 0x2
PCI_COMMAND_MASTER = 0x4
PCI_COMMAND_INTX_DISABLE = 0x400
PCI_STATUS = 0x06
PCI_STATUS_INTERRUPT = 0x08
PCI_REVISION_ID = 0x08
PCI_CLASS_PROG = 0x09
PCI_CLASS_DEVICE = 0x0A
PCI_BASE_ADDRESS_0 = 0x10
PCI_BASE_ADDRESS_SPACE_IO = 0x1
PCI_SUBSYSTEM_VENDOR_ID = 0x2C
PCI_SUBSYSTEM_ID = 0x2E
PCI_INTERRUPT_LINE = 0x3C
PCI_INTERRUPT_PIN = 0x3D
PCI_INTERRUPT_PIN_INTA = 1

# Class codes (class << 8 | subclass) of the devices the harness models.
PCI_CLASS_NETWORK_ETHERNET = 0x0200
PCI_CLASS_STORAGE_SCSI = 0x0100
PCI_CLASS_OTHERS = 0xFF00

CONFIG_SPACE_SIZE = 256         # conventional PCI: no extended config space


def check_config_access(offset: int, size: int) -> None:
    """Reject what no PCI host bridge issues: odd sizes, accesses outside the 256 bytes."""
    if size not in (1, 2, 4):
        raise ValueError(f"PCI config access size must be 1, 2 or 4, not {size}")
    if offset < 0 or offset + size > CONFIG_SPACE_SIZE:
        raise ValueError(f"PCI config access of {size} bytes at {offset:#x} is outside the "
                         f"{CONFIG_SPACE_SIZE}-byte config space")


def check_io_size(size: int) -> None:
    if size not in (1, 2, 4):
        raise ValueError(f"I/O port access size must be 1, 2 or 4, not {size}")


def all_ones(size: int) -> int:
    """What a read returns when nobody decodes it: the bus floats high."""
    return (1 << (8 * size)) - 1


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


class ConfigSpace:
    """The config space of a modelled function with one I/O BAR (BAR0) and INTA.

    Writes go through a mask, as on hardware: identity and class are
    read-only, BAR0 keeps only the address bits its size allows (so sizing
    reads back the size), the interrupt line is the firmware's scratch byte.
    The caller serialises access (the device model's lock).
    """

    def __init__(self, *, vendor: int, device: int, class_code: int, subsystem_vendor: int,
                 subsystem_id: int, io_bar_size: int, revision: int = 0) -> None:
        if io_bar_size < 4 or io_bar_size & (io_bar_size - 1):
            raise ValueError(f"an I/O BAR's size is a power of two of at least 4, not {io_bar_size}")
        self.io_bar_size = io_bar_size
        self._bytes = bytearray(CONFIG_SPACE_SIZE)
        struct.pack_into("<HH", self._bytes, PCI_VENDOR_ID, vendor, device)
        self._bytes[PCI_REVISION_ID] = revision
        struct.pack_into("<H", self._bytes, PCI_CLASS_DEVICE, class_code)
        struct.pack_into("<I", self._bytes, PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_SPACE_IO)
        struct.pack_into("<HH", self._bytes, PCI_SUBSYSTEM_VENDOR_ID, subsystem_vendor, subsystem_id)
        self._bytes[PCI_INTERRUPT_PIN] = PCI_INTERRUPT_PIN_INTA
        self._mask = bytearray(CONFIG_SPACE_SIZE)
        struct.pack_into("<H", self._mask, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY
                         | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE)
        struct.pack_into("<I", self._mask, PCI_BASE_ADDRESS_0, ~(io_bar_size - 1) & 0xFFFF_FFFF)
        self._mask[PCI_INTERRUPT_LINE] = 0xFF

    def read(self, offset: int, size: int, *, interrupt_pending: bool = False) -> int:
        """``interrupt_pending``: the function's INTx is asserted (shown in the status register)."""
        check_config_access(offset, size)
        data = bytearray(self._bytes[offset:offset + size])
        if interrupt_pending and offset <= PCI_STATUS < offset + size:
            data[PCI_STATUS - offset] |= PCI_STATUS_INTERRUPT
        return int.from_bytes(data, "little")

    def write(self, offset: int, value: int, size: int) -> None:
        check_config_access(offset, size)
        for i, byte in enumerate((value & all_ones(size)).to_bytes(size, "little")):
            mask = self._mask[offset + i]
            self._bytes[offset + i] = (self._bytes[offset + i] & ~mask) | (byte & mask)

    @property
    def intx_disabled(self) -> bool:
        return bool(struct.unpack_from("<H", self._bytes, PCI_COMMAND)[0] & PCI_COMMAND_INTX_DISABLE)

    def io_bar_offset(self, port: int, size: int) -> int | None:
        """Offset of ``port`` in BAR0, or None when BAR0 does not decode it (unassigned, I/O off)."""
        base = struct.unpack_from("<I", self._bytes, PCI_BASE_ADDRESS_0)[0] & ~0x3
        if not self._bytes[PCI_COMMAND] & PCI_COMMAND_IO or base == 0:
            return None
        offset = port - base
        return offset if 0 <= offset and offset + size <= self.io_bar_size else None
