"""The `sim` virtio-blk: a Python model of legacy virtio-blk-pci over a raw image (a file or a bytearray), strict and able to misbehave.

What is common to every device (registers, queues, interrupts, the worker,
the used-ring faults, missing interrupts) is ``virtio_device.VirtioPciDevice``;
this module is virtio-blk's part: the request queue, the device config, the
limits a driver must keep (``seg_max``, ``size_max``, whole sectors inside the
disk), read-only disks, flush, and a status byte that lies.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

from porter.harness.pci import PCI_CLASS_STORAGE_SCSI
from porter.harness.virtio_blk import (
    SECTOR, VIRTIO_BLK_CONFIG, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_OUTHDR,
    VIRTIO_BLK_REQUEST_QUEUE, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_BARRIER, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT)
from porter.harness.virtio_device import Faults, VirtioPciDevice
from porter.harness.virtio_pci import (VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_ID_BLOCK, VIRTIO_PCI_DEVICE_BLK,
                                       VIRTIO_RING_F_INDIRECT_DESC, bit)
from porter.harness.vring import Chain, DeviceQueue, RingViolation

QUEUE_SIZE = 128
SEG_MAX = QUEUE_SIZE - 2       # QEMU's legacy default: the ring less the header and status descriptors
DEFAULT_FEATURES = (bit(VIRTIO_BLK_F_SEG_MAX) | bit(VIRTIO_BLK_F_BLK_SIZE) | bit(VIRTIO_BLK_F_FLUSH)
                    | bit(VIRTIO_RING_F_INDIRECT_DESC))
SUPPORTED_FEATURES = (DEFAULT_FEATURES | bit(VIRTIO_BLK_F_SIZE_MAX) | bit(VIRTIO_BLK_F_RO)
                      | bit(VIRTIO_F_NOTIFY_ON_EMPTY))
BAD_STATUS = 0x7F              # bad_status: neither OK, IOERR nor UNSUPP
SERIAL = b"porter-sim-blk"


@dataclass
class BlkFaults(Faults):
    """virtio-blk's own ways to lie, besides the base's (used ring, interrupts, config)."""
    bad_status: bool = False        # every request's status byte is BAD_STATUS (the data moved all the same)


class _Backing:
    """The disk's bytes: a file (read and written in place) or a bytearray."""

    def __init__(self, store: Union[str, Path, bytearray]) -> None:
        if isinstance(store, bytearray):
            self.data, self.fd, self.size = store, None, len(store)
        else:
            self.data, self.fd = None, os.open(store, os.O_RDWR | os.O_CLOEXEC)
            self.size = os.fstat(self.fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        if self.fd is None:
            return bytes(self.data[offset:offset + length])
        return os.pread(self.fd, length, offset)

    def write(self, offset: int, data: bytes) -> None:
        if self.fd is None:
            self.data[offset:offset + len(data)] = data
        else:
            os.pwrite(self.fd, data, offset)

    def flush(self) -> None:
        if self.fd is not None:
            os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class SimBlkDevice(VirtioPciDevice):
    """A legacy virtio-blk-pci device (1af4:1001) modelled in Python over ``store``.

    One queue (requests) of ``queue_size`` entries; ``seg_max`` and
    ``size_max`` (offered when given) bound a request's data buffers, and a
    request beyond them is a device error; ``block_size`` is the logical
    block size in config. ``faults`` are ``BlkFaults`` fields.

    What tests look at, besides the base's: ``requests`` (a Counter by
    type name), ``max_segments`` and ``max_segment`` (the most data buffers
    and the largest one any request used), ``flushes``.
    """

    PCI_DEVICE_ID = VIRTIO_PCI_DEVICE_BLK
    VIRTIO_ID = VIRTIO_ID_BLOCK
    CLASS_CODE = PCI_CLASS_STORAGE_SCSI
    SUPPORTED_FEATURES = SUPPORTED_FEATURES
    FAULTS = BlkFaults

    def __init__(self, store: Union[str, Path, bytearray], *, read_only: bool = False,
                 features: int = DEFAULT_FEATURES, queue_size: int = QUEUE_SIZE, seg_max: int = SEG_MAX,
                 size_max: Optional[int] = None, block_size: int = SECTOR, **faults: object) -> None:
        if block_size < SECTOR or block_size & (block_size - 1):
            raise ValueError(f"block size must be a power of two of at least {SECTOR}, not {block_size}")
        if seg_max < 1 or (size_max is not None and size_max < SECTOR):
            raise ValueError(f"seg_max must be positive and size_max at least {SECTOR}")
        self.backing = _Backing(store)
        if self.backing.size % block_size:
            self.backing.close()
            raise ValueError(f"the image's {self.backing.size} bytes are not whole {block_size}-byte blocks")
        self.read_only = read_only
        self.seg_max = seg_max
        self.size_max = size_max
        self.block_size = block_size
        self.requests: Counter = Counter()
        self.max_segments = self.max_segment = self.flushes = 0
        features |= (bit(VIRTIO_BLK_F_RO) if read_only else 0) | (bit(VIRTIO_BLK_F_SIZE_MAX) if size_max else 0)
        super().__init__(features=features, queue_size=queue_size, faults=faults)

    @property
    def capacity(self) -> int:
        """The disk's size in SECTORs."""
        return self.backing.size // SECTOR

    def close(self) -> None:
        super().close()
        self.backing.close()

    # -- the model's part of VirtioPciDevice -----------------------------------------------

    def queue_names(self) -> list[str]:
        return ["requests"]

    def config_bytes(self) -> bytes:
        """struct virtio_blk_config up to blk_size: fields of features not offered read as zero."""
        size_max = self.size_max if self.features & bit(VIRTIO_BLK_F_SIZE_MAX) else 0
        seg_max = self.seg_max if self.features & bit(VIRTIO_BLK_F_SEG_MAX) else 0
        block_size = self.block_size if self.features & bit(VIRTIO_BLK_F_BLK_SIZE) else 0
        return VIRTIO_BLK_CONFIG.pack(self.capacity, size_max, seg_max, 0, 0, 0, block_size)

    def queue_work(self, index: int) -> Optional[Callable[[DeviceQueue], None]]:
        return self._serve_requests if index == VIRTIO_BLK_REQUEST_QUEUE else None

    # -- requests -------------------------------------------------------------------------------

    def _serve_requests(self, queue: DeviceQueue) -> None:
        done = []
        for _ in range(queue.avail_count(self._ram)):
            chain = self.chain(queue)
            queue.take()
            status, written = self._request(queue, chain)
            if self.faults.bad_status:
                status = BAD_STATUS
            self._put_status(chain, status)
            done.append((chain, written + 1))
        if done:
            self.put_used(queue, done)

    def _request(self, queue: DeviceQueue, chain: Chain) -> tuple[int, int]:
        """Carry out one request; (status, data bytes written to the driver's buffers)."""
        where = f"{queue.label}: chain at descriptor {chain.head}"
        if chain.readable_len < VIRTIO_BLK_OUTHDR.size or chain.capacity < 1:
            raise RingViolation(f"{where}: a request needs a {VIRTIO_BLK_OUTHDR.size}-byte header and a "
                                f"status byte; found {chain.readable_len} readable and {chain.capacity} "
                                f"writable bytes")
        readable = self.gather(chain.readable)
        kind, _, sector = VIRTIO_BLK_OUTHDR.unpack_from(readable)
        kind &= ~VIRTIO_BLK_T_BARRIER
        out_data = _segments_after(chain.readable, VIRTIO_BLK_OUTHDR.size)
        in_data = _segments_before(chain.writable, chain.capacity - 1)
        if kind == VIRTIO_BLK_T_IN:
            self.requests["read"] += 1
            if out_data:
                return self._refuse(where, "a read carries device-readable data"), 0
            return self._read(where, sector, in_data)
        if kind == VIRTIO_BLK_T_OUT:
            self.requests["write"] += 1
            if in_data:
                return self._refuse(where, "a write carries device-writable data"), 0
            return self._write(where, sector, out_data), 0
        if kind == VIRTIO_BLK_T_FLUSH:
            self.requests["flush"] += 1
            if not self.negotiated(VIRTIO_BLK_F_FLUSH):
                return VIRTIO_BLK_S_UNSUPP, 0
            self.backing.flush()
            self.flushes += 1
            return VIRTIO_BLK_S_OK, 0
        if kind == VIRTIO_BLK_T_GET_ID:
            self.requests["get_id"] += 1
            ident = SERIAL.ljust(VIRTIO_BLK_ID_BYTES, b"\0")
            return VIRTIO_BLK_S_OK, self.scatter(in_data, ident)
        self.requests[f"type {kind}"] += 1
        return VIRTIO_BLK_S_UNSUPP, 0

    def _refuse(self, where: str, problem: str) -> int:
        """A request no correct driver makes: a device error, and IOERR to the driver."""
        self.errors.append(f"{where}: {problem}")
        return VIRTIO_BLK_S_IOERR

    def _limits(self, where: str, segments: tuple[tuple[int, int], ...]) -> Optional[str]:
        self.max_segments = max(self.max_segments, len(segments))
        self.max_segment = max([self.max_segment] + [length for _, length in segments])
        if len(segments) > self.seg_max and self.features & bit(VIRTIO_BLK_F_SEG_MAX):
            return f"{len(segments)} data buffers, seg_max is {self.seg_max}"
        if self.size_max and any(length > self.size_max for _, length in segments):
            return f"a {max(length for _, length in segments)}-byte buffer, size_max is {self.size_max}"
        return None

    def _span(self, where: str, sector: int, segments: tuple[tuple[int, int], ...]) -> Optional[int]:
        """The request's byte offset on the disk, or None after refusing it (limits, bounds, sizes)."""
        length = sum(n for _, n in segments)
        problem = self._limits(where, segments)
        if problem is None and length % SECTOR:
            problem = f"{length} data bytes: not whole {SECTOR}-byte sectors"
        if problem is not None:
            self._refuse(where, problem)
            return None
        if sector + length // SECTOR > self.capacity:
            return None                   # beyond the end: an I/O error, as QEMU reports it
        return sector * SECTOR

    def _read(self, where: str, sector: int, segments: tuple[tuple[int, int], ...]) -> tuple[int, int]:
        offset = self._span(where, sector, segments)
        if offset is None:
            return VIRTIO_BLK_S_IOERR, 0
        length = sum(n for _, n in segments)
        return VIRTIO_BLK_S_OK, self.scatter(segments, self.backing.read(offset, length))

    def _write(self, where: str, sector: int, segments: tuple[tuple[int, int], ...]) -> int:
        offset = self._span(where, sector, segments)
        if offset is None or self.read_only:
            return VIRTIO_BLK_S_IOERR
        self.backing.write(offset, self.gather(segments))
        return VIRTIO_BLK_S_OK

    def _put_status(self, chain: Chain, status: int) -> None:
        addr, length = chain.writable[-1]
        self._ram[addr + length - 1] = status


def _segments_after(segments: tuple[tuple[int, int], ...], skip: int) -> tuple[tuple[int, int], ...]:
    """The buffers past the first ``skip`` bytes (the data after the header)."""
    out = []
    for addr, length in segments:
        if skip >= length:
            skip -= length
            continue
        out.append((addr + skip, length - skip))
        skip = 0
    return tuple(out)


def _segments_before(segments: tuple[tuple[int, int], ...], keep: int) -> tuple[tuple[int, int], ...]:
    """The buffers holding the first ``keep`` bytes (the data before the status byte)."""
    out = []
    for addr, length in segments:
        if keep <= 0:
            break
        out.append((addr, min(length, keep)))
        keep -= length
    return tuple(out)
