"""The harness's end of the shared-memory frame rings a driver host's net service reads and writes.

Layout and protocol are protocol.h's (struct porter_frame_ring and the
comment above it; the layouts here come from the generated contract): one
producer and one consumer per ring, free-running u32 indices, an eventfd
each way. ``FrameRings`` makes the memfd with both rings (TX: the harness
produces; RX: the host does) and the four eventfds, and hands them over.
Python cannot fence a store from a later load, so its waits also wake
every millisecond: a lost wake-up costs at most that.
"""

from __future__ import annotations

import mmap
import os
import select
import struct
import time
from typing import Iterable, Optional

from .contract import FRAME_RING, FRAME_RING_ALIGN, FRAME_RING_FIELDS, FRAME_SLOT
from .memory import GuestMemory, store_u32

_U32 = struct.Struct("<I")
OFFSET = FRAME_RING_FIELDS      # struct porter_frame_ring: field -> byte offset
WAIT_SLICE = 0.001              # the longest a lost wake-up can delay a waiting side


def ring_bytes(slots: int, slot_size: int) -> int:
    """What one ring of this geometry takes (frame_ring_bytes in frame_ring.c)."""
    if slots <= 0 or slots & (slots - 1) or slot_size < 64 or slot_size % 64:
        raise ValueError(f"a frame ring has a power-of-two number of slots of a multiple of 64 bytes, "
                         f"not {slots} x {slot_size}")
    size = FRAME_RING.size + slots * slot_size
    return (size + FRAME_RING_ALIGN - 1) // FRAME_RING_ALIGN * FRAME_RING_ALIGN


class FrameRing:
    """One ring at ``offset`` of ``buf``; this process is its producer or its consumer."""

    def __init__(self, buf: mmap.mmap, offset: int, slots: int, slot_size: int, ready_fd: int, space_fd: int):
        self.buf, self.base, self.slots, self.slot_size = buf, offset, slots, slot_size
        self.ready_fd, self.space_fd = ready_fd, space_fd
        self.capacity = slot_size - FRAME_SLOT.size
        self._data = offset + FRAME_RING.size
        buf[offset:offset + FRAME_RING.size] = bytes(FRAME_RING.size)
        self._store("slots", slots)
        self._store("slot_size", slot_size)

    def _load(self, field: str) -> int:
        return _U32.unpack_from(self.buf, self.base + OFFSET[field])[0]

    def _store(self, field: str, value: int) -> None:
        store_u32(self.buf, self.base + OFFSET[field], value)

    def _slot(self, i: int) -> int:
        return self._data + (i % self.slots) * self.slot_size

    def pending(self) -> int:
        return (self._load("head") - self._load("tail")) & 0xFFFF_FFFF

    def _sleep(self, fd: int, flag: str, ready, deadline: float) -> bool:
        """Wait on ``fd`` (with ``flag`` set) until ``ready()``; False at the deadline."""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not ready():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._store(flag, 1)
            if ready():
                break
            if poller.poll(min(left, WAIT_SLICE) * 1000):
                try:
                    os.eventfd_read(fd)
                except BlockingIOError:
                    pass
        self._store(flag, 0)
        return True

    # -- producer -----------------------------------------------------------

    def put(self, dev: int, frames: Iterable[bytes], timeout: float = 5.0) -> int:
        """Publish ``frames`` in order, waiting for slots; the number published (fewer at the timeout)."""
        deadline = time.monotonic() + timeout
        head = self._load("head")
        done = 0
        for frame in frames:
            if len(frame) > self.capacity:
                raise ValueError(f"frame of {len(frame)} bytes exceeds the {self.capacity}-byte ring slot")
            if (head - self._load("tail")) & 0xFFFF_FFFF >= self.slots:
                self._publish(head)
                if not self._sleep(self.space_fd, "producer_waiting",
                                   lambda: (head - self._load("tail")) & 0xFFFF_FFFF < self.slots, deadline):
                    return done
            at = self._slot(head)
            FRAME_SLOT.pack_into(self.buf, at, len(frame), dev)
            self.buf[at + FRAME_SLOT.size:at + FRAME_SLOT.size + len(frame)] = frame
            head = (head + 1) & 0xFFFF_FFFF
            done += 1
        self._publish(head)
        return done

    def _publish(self, head: int) -> None:
        # the slots were stored first; x86 keeps stores in order
        self._store("head", head)
        os.eventfd_write(self.ready_fd, 1)

    # -- consumer -----------------------------------------------------------

    def get(self, timeout: float, limit: Optional[int] = None) -> list[tuple[int, bytes]]:
        """(dev, frame) for every published frame, waiting up to ``timeout`` for the first."""
        if not self._sleep(self.ready_fd, "consumer_waiting", lambda: self.pending() > 0,
                           time.monotonic() + timeout):
            return []
        tail, head = self._load("tail"), self._load("head")
        count = (head - tail) & 0xFFFF_FFFF
        if limit is not None:
            count = min(count, limit)
        out = []
        for i in range(count):
            at = self._slot(tail + i)
            length, dev = FRAME_SLOT.unpack_from(self.buf, at)
            out.append((dev, bytes(self.buf[at + FRAME_SLOT.size:at + FRAME_SLOT.size + min(length, self.capacity)])))
        self._store("tail", tail + count)
        if self._load("producer_waiting"):
            self._store("producer_waiting", 0)
            os.eventfd_write(self.space_fd, 1)
        return out


class FrameRings:
    """The memfd with a TX and an RX ring, and their eventfds, for one driver host."""

    def __init__(self, slots: int = 256, slot_size: int = 2048):
        self.slots, self.slot_size = slots, slot_size
        size = ring_bytes(slots, slot_size)
        self.memory = GuestMemory(2 * size, name="porter-frame-rings")
        self.fds = [os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK) for _ in range(4)]
        buf = self.memory.buffer
        self.tx = FrameRing(buf, 0, slots, slot_size, self.fds[0], self.fds[1])
        self.rx = FrameRing(buf, size, slots, slot_size, self.fds[2], self.fds[3])

    def handover_fds(self) -> list[int]:
        """What NET_RINGS carries: the memfd, then TX ready/space, RX ready/space."""
        return [self.memory.fd, *self.fds]

    def close(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []
        self.memory.close()
