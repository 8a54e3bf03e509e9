"""Guest "physical" memory: one memfd shared by the harness, the device and the driver host."""

from __future__ import annotations

import fcntl
import mmap
import os
import struct


def store_u16(buf, addr: int, value: int) -> None:
    """One aligned 16-bit store into ``buf`` at ``addr``: for an index another process reads as it changes.

    ``struct.pack_into`` would not do: CPython zeroes the target before it
    packs (``s_pack_internal`` begins with a memset), so a reader polling an
    index that moves from n to n + 1 can see 0 in between, and a virtio device
    that reads an avail index of 0 takes every stale entry up to its own index
    again. A typed memoryview item is written with a single store (native
    order: little-endian, as virtio's legacy rings and porter's frame rings).
    """
    if addr & 1:
        raise ValueError(f"a 16-bit index at {addr:#x} is not aligned: it would be no single store")
    memoryview(buf)[addr:addr + 2].cast("H")[0] = value & 0xFFFF


def store_u32(buf, addr: int, value: int) -> None:
    """As store_u16, 32 bits."""
    if addr & 3:
        raise ValueError(f"a 32-bit index at {addr:#x} is not aligned: it would be no single store")
    memoryview(buf)[addr:addr + 4].cast("I")[0] = value & 0xFFFF_FFFF


class GuestMemory:
    """A memfd of ``size`` bytes, mapped here; physical address = offset in the memfd.

    The same fd goes to the device backend (QEMU maps it as guest RAM at
    guest-physical 0) and later to the driver host, so all three see the
    same pages and descriptors carry plain offsets.
    """

    def __init__(self, size: int, name: str = "porter-guest-ram") -> None:
        if size <= 0 or size % mmap.PAGESIZE:
            raise ValueError(f"guest memory size must be a positive multiple of {mmap.PAGESIZE}, not {size}")
        self.size = size
        self._fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(self._fd, size)
            # A peer that shrank the file would turn every access here into SIGBUS.
            fcntl.fcntl(self._fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
            self._map = mmap.mmap(self._fd, size)
        except BaseException:
            os.close(self._fd)
            raise

    @property
    def fd(self) -> int:
        """The memfd; pass it on (SCM_RIGHTS, pass_fds), it stays owned by this object."""
        if self._fd < 0:
            raise ValueError("guest memory is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def _check(self, addr: int, length: int) -> None:
        if addr < 0 or length < 0 or addr + length > self.size:
            raise IndexError(
                f"guest-physical range {addr:#x}+{length:#x} is outside guest memory of {self.size:#x} bytes")

    def read(self, addr: int, length: int) -> bytes:
        self._check(addr, length)
        return self._map[addr:addr + length]

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        self._check(addr, len(data))
        self._map[addr:addr + len(data)] = data

    def fill(self, addr: int, length: int, byte: int = 0) -> None:
        self._check(addr, length)
        self._map[addr:addr + length] = bytes([byte]) * length

    def view(self, addr: int, length: int) -> memoryview:
        """A zero-copy window; release it before close() (mmap refuses to close under exports)."""
        self._check(addr, length)
        return memoryview(self._map)[addr:addr + length]

    @property
    def buffer(self) -> mmap.mmap:
        """The mapping itself, for struct.unpack_from and slicing at guest-physical offsets (no bounds checks)."""
        if self._fd < 0:
            raise ValueError("guest memory is closed")
        return self._map

    def pack(self, fmt: str | struct.Struct, addr: int, *values: int) -> None:
        s = fmt if isinstance(fmt, struct.Struct) else struct.Struct(fmt)
        self._check(addr, s.size)
        s.pack_into(self._map, addr, *values)

    def unpack(self, fmt: str | struct.Struct, addr: int) -> tuple:
        s = fmt if isinstance(fmt, struct.Struct) else struct.Struct(fmt)
        self._check(addr, s.size)
        return s.unpack_from(self._map, addr)

    def close(self) -> None:
        if self._fd < 0:
            return
        self._map.close()
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> GuestMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"GuestMemory(size={self.size:#x}, {state})"
