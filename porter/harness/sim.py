"""The `sim` device backend: a Python model of legacy virtio-net-pci, deterministic and able to misbehave.

``SimNetDevice`` offers the harness the interface ``QemuDevice`` offers
(config space, I/O ports at the address programmed into BAR0, guest memory,
an INTx irqfd with resample, a ``-netdev dgram``-like UNIX datagram wire), so
``Machine.attach()`` takes either. A worker thread serves the queues when the
driver kicks them and delivers frames from the wire when RX buffers are posted.

Unlike QEMU it checks every ring access strictly: a descriptor outside guest
memory, an out-of-range id, a looping chain or a malformed header is recorded
in ``errors`` and stops that queue until a reset. Fault switches (``Faults``)
make it break the virtio contract on purpose, so tests can prove a driver
fails cleanly.
"""

from __future__ import annotations

import mmap
import os
import random
import select
import shutil
import socket
import struct
import tempfile
import threading
import weakref
from dataclasses import dataclass, field, fields
from typing import Callable, Optional

from porter.harness.memory import GuestMemory
from porter.harness.virtio_legacy import (
    PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_SPACE_IO, PCI_COMMAND, PCI_COMMAND_IO, PCI_COMMAND_MASTER,
    PCI_COMMAND_MEMORY, PCI_INTERRUPT_LINE, PCI_INTERRUPT_PIN,
    PCI_VENDOR_ID, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED, VIRTIO_F_ANY_LAYOUT,
    VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_ID_NET, VIRTIO_NET_CONFIG_MAC, VIRTIO_NET_F_CSUM,
    VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_RX_EXTRA, VIRTIO_NET_F_CTRL_VLAN, VIRTIO_NET_F_CTRL_VQ,
    VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
    VIRTIO_NET_F_GUEST_UFO, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_STATUS,
    VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_LEN,
    VIRTIO_NET_HDR_MRG_RXBUF_LEN, VIRTIO_NET_RX_QUEUE, VIRTIO_NET_S_LINK_UP, VIRTIO_NET_TX_QUEUE,
    VIRTIO_PCI_CONFIG, VIRTIO_PCI_DEVICE_NET, VIRTIO_PCI_GUEST_FEATURES, VIRTIO_PCI_HOST_FEATURES,
    VIRTIO_PCI_ISR, VIRTIO_PCI_ISR_CONFIG, VIRTIO_PCI_ISR_QUEUE, VIRTIO_PCI_QUEUE_ADDR_SHIFT,
    VIRTIO_PCI_QUEUE_NOTIFY, VIRTIO_PCI_QUEUE_NUM, VIRTIO_PCI_QUEUE_PFN, VIRTIO_PCI_QUEUE_SEL,
    VIRTIO_PCI_REGION_SIZE, VIRTIO_PCI_STATUS, VIRTIO_PCI_VENDOR, VIRTIO_RING_F_INDIRECT_DESC,
    VRING_AVAIL_F_NO_INTERRUPT, VRING_DESC, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT,
    VRING_DESC_F_WRITE, VRING_USED_ELEM, VringLayout, bit)

DEFAULT_MAC = "52:54:00:12:34:56"
QUEUE_SIZE = 256
VIRTIO_NET_CTRL_QUEUE = 2
DEFAULT_FEATURES = (bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS) | bit(VIRTIO_NET_F_MRG_RXBUF)
                    | bit(VIRTIO_NET_F_CTRL_VQ) | bit(VIRTIO_NET_F_CTRL_RX)
                    | bit(VIRTIO_RING_F_INDIRECT_DESC))
# What the model implements. GUEST_* offloads are safe to offer (the sim never
# sends offloaded frames) and make a 2.6 driver post big-packet RX chains;
# HOST_TSO/UFO would need segmentation and EVENT_IDX event suppression: not offered.
SUPPORTED_FEATURES = (DEFAULT_FEATURES | bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_GUEST_CSUM)
                      | bit(VIRTIO_NET_F_GUEST_TSO4) | bit(VIRTIO_NET_F_GUEST_TSO6)
                      | bit(VIRTIO_NET_F_GUEST_ECN) | bit(VIRTIO_NET_F_GUEST_UFO)
                      | bit(VIRTIO_NET_F_CTRL_VLAN) | bit(VIRTIO_NET_F_CTRL_RX_EXTRA)
                      | bit(VIRTIO_F_NOTIFY_ON_EMPTY) | bit(VIRTIO_F_ANY_LAYOUT))

# Control queue (Linux 2.6.32 include/linux/virtio_net.h).
VIRTIO_NET_OK, VIRTIO_NET_ERR = 0, 1
VIRTIO_NET_CTRL_RX = 0
VIRTIO_NET_CTRL_RX_PROMISC, VIRTIO_NET_CTRL_RX_ALLMULTI = 0, 1
VIRTIO_NET_CTRL_RX_ALLUNI, VIRTIO_NET_CTRL_RX_NOMULTI = 2, 3
VIRTIO_NET_CTRL_RX_NOUNI, VIRTIO_NET_CTRL_RX_NOBCAST = 4, 5
VIRTIO_NET_CTRL_MAC = 1
VIRTIO_NET_CTRL_MAC_TABLE_SET = 0
VIRTIO_NET_CTRL_VLAN = 2
VIRTIO_NET_CTRL_VLAN_ADD, VIRTIO_NET_CTRL_VLAN_DEL = 0, 1

PCI_STATUS = 0x06
PCI_STATUS_INTERRUPT = 0x08
PCI_COMMAND_INTX_DISABLE = 0x400
PCI_CLASS_PROG = 0x09
PCI_SUBSYSTEM_VENDOR_ID = 0x2C
PCI_CLASS_NETWORK_ETHERNET = 0x0200
CONFIG_SPACE_SIZE = 256

MAX_FRAME = 65536             # largest datagram taken from the wire (QEMU's dgram takes 64 KiB + change)
MAX_INDIRECT = 1024           # QEMU's VIRTQUEUE_MAX_SIZE bounds indirect tables the same way
RX_BURST = 256                # frames delivered per wake-up before TX gets a turn
TX_RETRY_MS = 1               # the wire was full: try the TX ring again this soon
_U16 = struct.Struct("<H")
_NET_HDR = struct.Struct("<BBHHHH")   # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
_BROADCAST = b"\xff" * 6
_ETH_P_8021Q = b"\x81\x00"


@dataclass
class Faults:
    """Ways to break the virtio contract on purpose; change them at run time through ``SimNetDevice.faults``."""
    used_idx_jump: int = 0          # extra used.idx advance per used-ring update (phantom entries)
    bad_used_id: bool = False       # used entries name descriptor queue_size + head (out of range)
    oversize_len: bool = False      # used.len = writable bytes of the chain + 1
    garbage_config: bool = False    # device config reads (MAC, status) return junk, new junk each read
    no_interrupts: bool = False     # never write the irqfd


@dataclass(frozen=True)
class CtrlCommand:
    """One control-queue command as the driver sent it, and the ack the sim gave."""
    cls: int
    cmd: int
    data: bytes
    ack: int


@dataclass
class RxFilter:
    """The RX mode the driver set through the control queue; QEMU starts promiscuous, so does the sim."""
    promisc: bool = True
    allmulti: bool = False
    alluni: bool = False
    nomulti: bool = False
    nouni: bool = False
    nobcast: bool = False
    unicast: list[bytes] = field(default_factory=list)
    multicast: list[bytes] = field(default_factory=list)
    vlans: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Chain:
    """A validated descriptor chain: its head and its buffers (guest-physical addr, len)."""
    head: int
    readable: tuple[tuple[int, int], ...]
    writable: tuple[tuple[int, int], ...]

    @property
    def capacity(self) -> int:
        return sum(length for _, length in self.writable)

    @property
    def readable_len(self) -> int:
        return sum(length for _, length in self.readable)


@dataclass
class _Queue:
    index: int
    name: str
    num: int
    pfn: int = 0
    layout: Optional[VringLayout] = None
    last_avail: int = 0          # next avail entry the device will take (free-running u16)
    used_idx: int = 0            # the device's used.idx (free-running u16)
    unsignalled: int = 0         # used entries published since the last interrupt decision
    broken: Optional[str] = None


class _Violation(Exception):
    """The driver broke the ring contract; the message names queue, descriptor, addr and len."""


@dataclass
class _Resources:
    """What must go away with the sim; the finalizer holds this, never the device."""
    workdir: str
    sock: socket.socket
    stop_fd: int
    wake_fd: int
    fds: list[int] = field(default_factory=list)          # our dups of the irqfds
    thread: Optional[threading.Thread] = None


def _cleanup(res: _Resources) -> None:
    if res.thread is not None and res.thread.is_alive():
        os.eventfd_write(res.stop_fd, 1)
        res.thread.join(5.0)
    res.sock.close()
    for fd in [res.stop_fd, res.wake_fd] + res.fds:
        try:
            os.close(fd)
        except OSError:
            pass
    res.fds.clear()
    shutil.rmtree(res.workdir, ignore_errors=True)


class SimNetDevice:
    """A legacy virtio-net-pci device (1af4:1000, I/O BAR0 of 32 bytes) modelled in Python.

    Frames the driver transmits go as datagrams from ``netdev_path`` to
    ``peer_path``; datagrams sent to ``netdev_path`` are received, as with
    QEMU's ``-netdev dgram``. Queues: 0 RX, 1 TX, 2 control (when CTRL_VQ is
    offered), ``queue_size`` entries each. ``faults`` are ``Faults`` fields.

    What tests look at: ``errors`` (device errors, one string each),
    ``ctrl_commands``, ``rx_filter``, ``queue_broken(i)``, and the counters
    ``frames_tx`` (frames put on the wire), ``frames_rx`` (frames written to
    RX buffers), ``notifies``, ``interrupts`` (irqfd writes), ``tx_dropped``
    (no peer), ``rx_dropped`` (no posted chain could hold it), ``rx_filtered``.
    """

    def __init__(self, peer_path: Optional[str] = None, *, mac: str = DEFAULT_MAC,
                 features: int = DEFAULT_FEATURES, queue_size: int = QUEUE_SIZE, **faults: object) -> None:
        unsupported = features & ~SUPPORTED_FEATURES
        if unsupported:
            raise ValueError(f"SimNetDevice cannot offer feature bits {_bits(unsupported)}; "
                             f"it implements {_bits(SUPPORTED_FEATURES)}")
        if queue_size <= 0 or queue_size & (queue_size - 1) or queue_size > 32768:
            raise ValueError(f"queue size must be a power of two up to 32768, not {queue_size}")
        known = {f.name for f in fields(Faults)}
        if set(faults) - known:
            raise TypeError(f"unknown fault(s) {sorted(set(faults) - known)}; known: {sorted(known)}")
        self.mac = _parse_mac(mac)
        self.peer_path = peer_path
        self.features = features
        self.queue_size = queue_size
        self.faults = Faults(**faults)
        self.link_up = True
        # What the device saw go wrong, and what the driver asked of the control queue.
        self.errors: list[str] = []
        self.ctrl_commands: list[CtrlCommand] = []
        self.frames_tx = self.frames_rx = self.notifies = self.interrupts = 0
        self.tx_dropped = self.rx_dropped = self.rx_filtered = 0

        self._lock = threading.Lock()
        self._junk = random.Random(0x5EED)      # garbage_config: deterministic junk
        self._ram: Optional[mmap.mmap] = None
        self._irq_fd: Optional[int] = None
        self._resample_fd: Optional[int] = None
        self._rx_pending: Optional[bytes] = None   # a frame off the wire, waiting for RX buffers
        self._rx_buf = bytearray(MAX_FRAME + 1)    # one byte more, to tell an oversized datagram
        self._rx_more = False                      # the last RX burst stopped at its limit
        self._tx_retry = False                     # the wire was full: TX ring not drained
        self._kicked: set[int] = set()
        self._closed = False
        self._cfg = self._initial_config_space()
        self._wmask = self._config_write_mask()
        self._reset_state()

        workdir = tempfile.mkdtemp(prefix="porter-sim-")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._res = _Resources(workdir, sock, os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK),
                               os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK))
        self._finalizer = weakref.finalize(self, _cleanup, self._res)
        self.netdev_path = os.path.join(workdir, "net.sock")
        try:
            sock.bind(self.netdev_path)
            sock.setblocking(False)     # the worker never blocks on the wire; poll says when
            self._res.thread = threading.Thread(target=self._run, name=f"sim-virtio-net-{id(self):x}",
                                                daemon=True)
            self._res.thread.start()
        except BaseException:
            self._finalizer()
            raise

    # -- life cycle -----------------------------------------------------------

    def close(self) -> None:
        """Stop the worker thread, close the wire and the irqfd copies, unmap guest memory. Idempotent."""
        with self._lock:
            self._closed = True
        self._finalizer()
        with self._lock:
            if self._ram is not None:
                self._ram.close()
                self._ram = None
            self._irq_fd = self._resample_fd = None

    def __enter__(self) -> SimNetDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def worker_alive(self) -> bool:
        return self._res.thread is not None and self._res.thread.is_alive()

    def sync_memory(self, memory: GuestMemory) -> None:
        """Map ``memory``'s memfd as the device's view of guest RAM (physical address = offset)."""
        ram = mmap.mmap(memory.fd, memory.size)   # our own mapping: lives on if the caller closes theirs
        with self._lock:
            self._check_open()
            old, self._ram = self._ram, ram
        if old is not None:
            old.close()
        self._wake()

    def set_irqfd(self, irq_fd: int, resample_fd: Optional[int] = None) -> None:
        """INTx: the sim writes ``irq_fd`` when the line rises; a write to ``resample_fd`` is the EOI."""
        # Copies, as QEMU gets them over SCM_RIGHTS: the caller may close its own whenever it likes.
        irq = os.dup(irq_fd)
        resample = os.dup(resample_fd) if resample_fd is not None else None
        with self._lock:
            self._check_open()
            # Old copies stay open until close(): the worker may be polling one right now.
            self._res.fds += [irq] + ([resample] if resample is not None else [])
            self._irq_fd, self._resample_fd = irq, resample
        self._wake()

    def reset(self) -> None:
        """Reset the device as a PCI reset would (device state; config space and BARs stay)."""
        with self._lock:
            self._check_open()
            self._reset_state()

    def set_link(self, up: bool) -> None:
        """Change the link status in device config and raise a config interrupt (if STATUS is offered)."""
        with self._lock:
            self.link_up = up
            if self.features & bit(VIRTIO_NET_F_STATUS) and self._status & VIRTIO_CONFIG_S_DRIVER_OK:
                self._set_isr(VIRTIO_PCI_ISR_CONFIG)

    def queue_broken(self, index: int) -> Optional[str]:
        """Why queue ``index`` stopped (its device error), or None while it runs."""
        with self._lock:
            return self._queues[index].broken if 0 <= index < len(self._queues) else None

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"netdev={self.netdev_path!r}"
        return f"SimNetDevice(mac={self.mac.hex(':')}, features={self.features:#x}, {state})"

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the SimNetDevice is closed")

    def _wake(self) -> None:
        try:
            os.eventfd_write(self._res.wake_fd, 1)
        except OSError:          # closed under us: the worker is gone anyway
            pass

    def _reset_state(self) -> None:
        """Virtio reset (status 0): forget features, rings, ISR and RX mode; the wire and link stay."""
        self._status = 0
        self._guest_features = 0
        self._queue_sel = 0
        self._isr = 0
        self._kicked.clear()
        self._tx_retry = False
        self.rx_filter = RxFilter()
        names = ["rx", "tx"] + (["ctrl"] if self.features & bit(VIRTIO_NET_F_CTRL_VQ) else [])
        self._queues = [_Queue(i, name, self.queue_size) for i, name in enumerate(names)]

    # -- PCI config space ---------------------------------------------------------

    @staticmethod
    def _initial_config_space() -> bytearray:
        cfg = bytearray(CONFIG_SPACE_SIZE)
        struct.pack_into("<HH", cfg, PCI_VENDOR_ID, VIRTIO_PCI_VENDOR, VIRTIO_PCI_DEVICE_NET)
        struct.pack_into("<H", cfg, PCI_CLASS_PROG + 1, PCI_CLASS_NETWORK_ETHERNET)  # revision 0: legacy
        struct.pack_into("<I", cfg, PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_SPACE_IO)
        struct.pack_into("<HH", cfg, PCI_SUBSYSTEM_VENDOR_ID, VIRTIO_PCI_VENDOR, VIRTIO_ID_NET)
        cfg[PCI_INTERRUPT_PIN] = 1                    # INTA
        return cfg

    @staticmethod
    def _config_write_mask() -> bytearray:
        mask = bytearray(CONFIG_SPACE_SIZE)
        struct.pack_into("<H", mask, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER
                         | PCI_COMMAND_INTX_DISABLE)
        # Address bits of a 32-byte I/O BAR; the low bits say "I/O" and the size.
        struct.pack_into("<I", mask, PCI_BASE_ADDRESS_0, ~(VIRTIO_PCI_REGION_SIZE - 1) & 0xFFFF_FFFF)
        mask[PCI_INTERRUPT_LINE] = 0xFF
        return mask

    def cfg_read(self, offset: int, size: int) -> int:
        _check_cfg_access(offset, size)
        with self._lock:
            data = bytearray(self._cfg[offset:offset + size])
            if offset <= PCI_STATUS < offset + size and self._isr:
                data[PCI_STATUS - offset] |= PCI_STATUS_INTERRUPT
        return int.from_bytes(data, "little")

    def cfg_write(self, offset: int, value: int, size: int) -> None:
        _check_cfg_access(offset, size)
        with self._lock:
            self._check_open()
            intx_was_disabled = self._intx_disabled()
            for i, byte in enumerate((value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")):
                mask = self._wmask[offset + i]
                self._cfg[offset + i] = (self._cfg[offset + i] & ~mask) | (byte & mask)
            if intx_was_disabled and not self._intx_disabled() and self._isr:
                self._raise_irq()        # the line was high all along, only masked

    def _intx_disabled(self) -> bool:
        return bool(struct.unpack_from("<H", self._cfg, PCI_COMMAND)[0] & PCI_COMMAND_INTX_DISABLE)

    def _bar_offset(self, port: int, size: int) -> Optional[int]:
        """Offset of ``port`` in BAR0, or None when BAR0 does not decode it (unassigned, I/O off)."""
        base = struct.unpack_from("<I", self._cfg, PCI_BASE_ADDRESS_0)[0] & ~0x3
        if not self._cfg[PCI_COMMAND] & PCI_COMMAND_IO or base == 0:
            return None
        offset = port - base
        return offset if 0 <= offset and offset + size <= VIRTIO_PCI_REGION_SIZE else None

    # -- I/O BAR0: legacy virtio registers and device config ------------------------

    def io_read(self, port: int, size: int) -> int:
        _check_io_size(size)
        with self._lock:
            self._check_open()
            offset = self._bar_offset(port, size)
            if offset is None:
                return (1 << (8 * size)) - 1          # nobody decodes it: the bus floats high
            if offset >= VIRTIO_PCI_CONFIG:
                return self._config_read(offset - VIRTIO_PCI_CONFIG, size)
            # Registers answer at their own offset only, truncated to the access size, as QEMU's do.
            return self._register_read(offset) & ((1 << (8 * size)) - 1)

    def io_write(self, port: int, value: int, size: int) -> None:
        _check_io_size(size)
        with self._lock:
            self._check_open()
            offset = self._bar_offset(port, size)
            if offset is None:
                return
            value &= (1 << (8 * size)) - 1
            if offset >= VIRTIO_PCI_CONFIG:
                self._config_write(offset - VIRTIO_PCI_CONFIG, value, size)
            else:
                self._register_write(offset, value)

    def _register_read(self, offset: int) -> int:
        queue = self._selected_queue()
        if offset == VIRTIO_PCI_HOST_FEATURES:
            return self.features
        if offset == VIRTIO_PCI_GUEST_FEATURES:
            return self._guest_features
        if offset == VIRTIO_PCI_QUEUE_PFN:
            return queue.pfn if queue else 0
        if offset == VIRTIO_PCI_QUEUE_NUM:
            return queue.num if queue else 0
        if offset == VIRTIO_PCI_QUEUE_SEL:
            return self._queue_sel
        if offset == VIRTIO_PCI_STATUS:
            return self._status
        if offset == VIRTIO_PCI_ISR:
            isr, self._isr = self._isr, 0            # reading acks and lowers the line
            return isr
        return 0xFFFF_FFFF

    def _register_write(self, offset: int, value: int) -> None:
        if offset == VIRTIO_PCI_GUEST_FEATURES:
            if value & ~self.features:
                self.errors.append(f"driver accepted feature bits {_bits(value & ~self.features)} "
                                   f"the device did not offer ({self.features:#x}); ignored")
            self._guest_features = value & self.features
        elif offset == VIRTIO_PCI_QUEUE_PFN:
            queue = self._selected_queue()
            if queue is not None:
                # PFN 0 takes the queue out of service (the 2.6 driver's del_vq does this).
                queue.pfn = value
                queue.layout = VringLayout.at(value << VIRTIO_PCI_QUEUE_ADDR_SHIFT, queue.num) if value else None
        elif offset == VIRTIO_PCI_QUEUE_SEL:
            self._queue_sel = value
        elif offset == VIRTIO_PCI_QUEUE_NOTIFY:
            if value < len(self._queues):
                self.notifies += 1
                self._kicked.add(value)
                self._wake()
        elif offset == VIRTIO_PCI_STATUS:
            self._write_status(value & 0xFF)
        # HOST_FEATURES, QUEUE_NUM and ISR are read-only.

    def _write_status(self, status: int) -> None:
        if status == 0:
            self._reset_state()
            return
        started = status & VIRTIO_CONFIG_S_DRIVER_OK and not self._status & VIRTIO_CONFIG_S_DRIVER_OK
        self._status = status
        if started:
            # A 2.6 driver kicks RX before DRIVER_OK; like QEMU, look at every queue now.
            self._kicked.update(range(len(self._queues)))
        self._wake()

    def _selected_queue(self) -> Optional[_Queue]:
        return self._queues[self._queue_sel] if self._queue_sel < len(self._queues) else None

    def _config_bytes(self) -> bytes:
        """struct virtio_net_config as far as the offered features make it exist (QEMU sizes it so)."""
        status = _U16.pack(VIRTIO_NET_S_LINK_UP if self.link_up else 0)
        return self.mac + (status if self.features & bit(VIRTIO_NET_F_STATUS) else b"")

    def _config_read(self, offset: int, size: int) -> int:
        config = self._config_bytes()
        if offset + size > len(config):
            return (1 << (8 * size)) - 1
        if self.faults.garbage_config:
            return self._junk.getrandbits(8 * size)
        return int.from_bytes(config[offset:offset + size], "little")

    def _config_write(self, offset: int, value: int, size: int) -> None:
        # Legacy drivers may set the MAC through config; the status field is read-only.
        data = value.to_bytes(size, "little")
        mac = bytearray(self.mac)
        for i, byte in enumerate(data):
            if VIRTIO_NET_CONFIG_MAC <= offset + i < VIRTIO_NET_CONFIG_MAC + 6:
                mac[offset + i - VIRTIO_NET_CONFIG_MAC] = byte
        self.mac = bytes(mac)

    # -- interrupts -----------------------------------------------------------------

    def _set_isr(self, bits: int) -> None:
        was = self._isr
        self._isr |= bits
        if not was:
            self._raise_irq()

    def _raise_irq(self) -> None:
        if self._irq_fd is None or self.faults.no_interrupts or self._intx_disabled():
            return
        os.eventfd_write(self._irq_fd, 1)
        self.interrupts += 1

    # -- the worker -------------------------------------------------------------------

    @property
    def _running(self) -> bool:
        return bool(self._status & VIRTIO_CONFIG_S_DRIVER_OK and not self._status & VIRTIO_CONFIG_S_FAILED)

    def _run(self) -> None:
        res = self._res
        sock_fd = res.sock.fileno()
        while True:
            with self._lock:
                watch = [res.stop_fd, res.wake_fd]
                if self._resample_fd is not None:
                    watch.append(self._resample_fd)
                if self._rx_pending is None:
                    watch.append(sock_fd)    # hold one frame; the rest wait in the socket, as in QEMU
                timeout = 0 if self._rx_more else TX_RETRY_MS if self._tx_retry else None
            poller = select.poll()
            for fd in watch:
                poller.register(fd, select.POLLIN)
            ready = {fd for fd, _ in poller.poll(timeout)}
            if res.stop_fd in ready:
                return
            with self._lock:
                try:
                    if res.wake_fd in ready:
                        _drain(res.wake_fd)
                    if self._resample_fd in ready:
                        _drain(self._resample_fd)
                        if self._isr:               # EOI with the line still high: interrupt again
                            self._raise_irq()
                    self._service()
                except Exception as e:      # a sim bug must show, not kill the device
                    self.errors.append(f"sim: internal error in the worker: {e!r}")
                    self._rx_more = self._tx_retry = False

    def _service(self) -> None:
        self._rx_more = False
        if self._rx_pending is None:
            self._rx_pending = self._recv_frame()
        if self._ram is None or not self._running:
            return                            # kicks stay pending until DRIVER_OK
        kicked, self._kicked = self._kicked, set()
        self._tx_retry = False
        for index in sorted(kicked):
            if index == VIRTIO_NET_TX_QUEUE:
                self._serve(self._queues[index], self._transmit)
            elif index == VIRTIO_NET_CTRL_QUEUE:
                self._serve(self._queues[index], self._control)
            # An RX kick only says "buffers posted": the receive burst below looks at them.
        self._serve(self._queues[VIRTIO_NET_RX_QUEUE], self._receive_burst)

    def _serve(self, queue: _Queue, work: Callable[[_Queue], None]) -> None:
        if queue.layout is None or queue.broken is not None:
            return
        try:
            end = queue.layout.desc + queue.layout.size
            if end > len(self._ram):
                raise _Violation(f"queue {queue.index} ({queue.name}): ring at {queue.layout.desc:#x} "
                                 f"({queue.layout.size} bytes, PFN {queue.pfn:#x}) lies outside guest "
                                 f"memory of {len(self._ram):#x} bytes")
            work(queue)
        except _Violation as v:
            # Legacy virtio has no NEEDS_RESET status: stopping the queue is what a driver can see.
            self.errors.append(str(v))
            queue.broken = str(v)
        finally:
            if queue.unsignalled:
                self._signal(queue)

    def _signal(self, queue: _Queue) -> None:
        queue.unsignalled = 0
        layout = queue.layout
        flags = _U16.unpack_from(self._ram, layout.avail)[0]
        empty = _U16.unpack_from(self._ram, layout.avail_idx)[0] == queue.last_avail
        if (not flags & VRING_AVAIL_F_NO_INTERRUPT
                or (empty and self._guest_features & bit(VIRTIO_F_NOTIFY_ON_EMPTY))):
            self._set_isr(VIRTIO_PCI_ISR_QUEUE)

    # -- rings --------------------------------------------------------------------------

    def _avail_count(self, queue: _Queue) -> int:
        idx = _U16.unpack_from(self._ram, queue.layout.avail_idx)[0]
        count = (idx - queue.last_avail) & 0xFFFF
        if count > queue.num:
            raise _Violation(f"queue {queue.index} ({queue.name}): avail index moved from "
                             f"{queue.last_avail} to {idx}, {count} entries in a {queue.num}-entry ring")
        return count

    def _avail_head(self, queue: _Queue, position: int) -> int:
        head = _U16.unpack_from(self._ram, queue.layout.avail_ring(position))[0]
        if head >= queue.num:
            raise _Violation(f"queue {queue.index} ({queue.name}): avail ring entry {position % queue.num} "
                             f"names descriptor {head}, beyond the queue size {queue.num}")
        return head

    def _walk(self, queue: _Queue, head: int) -> Chain:
        """Follow the chain at ``head`` (through an indirect table, if any), checking every descriptor."""
        table, count, where = queue.layout.desc, queue.num, ""
        readable: list[tuple[int, int]] = []
        writable: list[tuple[int, int]] = []
        index, seen = head, 0
        while True:
            addr, length, flags, nxt = VRING_DESC.unpack_from(self._ram, table + VRING_DESC.size * index)

            def bad(what: str) -> _Violation:
                return _Violation(f"queue {queue.index} ({queue.name}): descriptor {index}{where} "
                                  f"(chain head {head}) addr {addr:#x} len {length}: {what}")

            if flags & VRING_DESC_F_INDIRECT:
                if where:
                    raise bad("indirect descriptor inside an indirect table")
                if seen:
                    raise bad("indirect descriptor in the middle of a chain")
                if not self._guest_features & bit(VIRTIO_RING_F_INDIRECT_DESC):
                    raise bad("indirect descriptor, but VIRTIO_RING_F_INDIRECT_DESC was not negotiated")
                if flags & VRING_DESC_F_NEXT:
                    raise bad("indirect descriptor with NEXT set")
                if length == 0 or length % VRING_DESC.size or length // VRING_DESC.size > MAX_INDIRECT:
                    raise bad(f"indirect table length is not a multiple of {VRING_DESC.size} "
                              f"between 1 and {MAX_INDIRECT} entries")
                if not self._inside(addr, length):
                    raise bad(f"indirect table lies outside guest memory of {len(self._ram):#x} bytes")
                table, count, where = addr, length // VRING_DESC.size, f" of the indirect table at {addr:#x}"
                index = 0
                continue
            if not self._inside(addr, length):
                raise bad(f"buffer lies outside guest memory of {len(self._ram):#x} bytes")
            if flags & VRING_DESC_F_WRITE:
                writable.append((addr, length))
            elif writable:
                raise bad("device-readable buffer after a device-writable one")
            else:
                readable.append((addr, length))
            seen += 1
            if not flags & VRING_DESC_F_NEXT:
                return Chain(head, tuple(readable), tuple(writable))
            if nxt >= count:
                raise bad(f"next {nxt} is beyond the {count}-entry table")
            if seen >= count:
                raise bad(f"chain is longer than its {count}-entry table: it loops")
            index = nxt

    def _inside(self, addr: int, length: int) -> bool:
        return 0 <= addr and addr + length <= len(self._ram)

    def _gather(self, segments: tuple[tuple[int, int], ...]) -> bytes:
        return b"".join(self._ram[addr:addr + length] for addr, length in segments)

    def _scatter(self, segments: tuple[tuple[int, int], ...], data: bytes) -> None:
        done = 0
        for addr, length in segments:
            if done == len(data):
                break
            n = min(length, len(data) - done)
            self._ram[addr:addr + n] = data[done:done + n]
            done += n

    def _put_used(self, queue: _Queue, entries: list[tuple[Chain, int]]) -> None:
        """Publish used entries (chain, bytes written) at once: idx moves after all entries are stored."""
        faults = self.faults
        layout = queue.layout
        for i, (chain, written) in enumerate(entries):
            head = queue.num + chain.head if faults.bad_used_id else chain.head
            length = chain.capacity + 1 if faults.oversize_len else written
            VRING_USED_ELEM.pack_into(self._ram, layout.used_ring(queue.used_idx + i), head, length)
        queue.used_idx = (queue.used_idx + len(entries) + max(0, faults.used_idx_jump)) & 0xFFFF
        _U16.pack_into(self._ram, layout.used_idx, queue.used_idx)
        queue.unsignalled += len(entries)

    def _header_len(self) -> int:
        mergeable = self._guest_features & bit(VIRTIO_NET_F_MRG_RXBUF)
        return VIRTIO_NET_HDR_MRG_RXBUF_LEN if mergeable else VIRTIO_NET_HDR_LEN

    # -- TX ---------------------------------------------------------------------------------

    def _transmit(self, queue: _Queue) -> None:
        header_len = self._header_len()
        for _ in range(self._avail_count(queue)):
            chain = self._walk(queue, self._avail_head(queue, queue.last_avail))
            where = f"queue {queue.index} ({queue.name}): chain at descriptor {chain.head}"
            if chain.writable:
                raise _Violation(f"{where}: TX chain has device-writable buffers")
            if not header_len <= chain.readable_len <= header_len + MAX_FRAME:
                raise _Violation(f"{where}: TX chain carries {chain.readable_len} bytes; it must hold a "
                                 f"{header_len}-byte virtio-net header and at most {MAX_FRAME} frame bytes")
            data = self._gather(chain.readable)
            frame = self._apply_tx_header(where, data[:header_len], data[header_len:])
            if not self._send(frame):
                # Leave the chain on the ring and come back soon: the peer's queue is full.
                self._tx_retry = True
                self._kicked.add(queue.index)
                return
            queue.last_avail = (queue.last_avail + 1) & 0xFFFF
            self._put_used(queue, [(chain, 0)])

    def _apply_tx_header(self, where: str, header: bytes, frame: bytes) -> bytes:
        flags, gso_type, _, _, csum_start, csum_offset = _NET_HDR.unpack_from(header)
        if gso_type != VIRTIO_NET_HDR_GSO_NONE:
            raise _Violation(f"{where}: header asks for GSO type {gso_type}; no HOST_TSO/UFO was offered")
        if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
            if not self._guest_features & bit(VIRTIO_NET_F_CSUM):
                raise _Violation(f"{where}: header has NEEDS_CSUM, but VIRTIO_NET_F_CSUM was not negotiated")
            if csum_start + csum_offset + 2 > len(frame):
                raise _Violation(f"{where}: checksum at {csum_start}+{csum_offset} lies beyond the "
                                 f"{len(frame)}-byte frame")
            frame = _complete_checksum(frame, csum_start, csum_offset)
        return frame

    def _send(self, frame: bytes) -> bool:
        """Put ``frame`` on the wire; False if the peer's queue is full (try again later)."""
        if self.peer_path is None:
            self.tx_dropped += 1
            return True
        try:
            self._res.sock.sendto(frame, self.peer_path)
        except BlockingIOError:
            return False
        except OSError:                 # no peer bound, frame too big: the wire drops it, as QEMU's does
            self.tx_dropped += 1
            return True
        self.frames_tx += 1
        return True

    # -- control queue ------------------------------------------------------------------------

    def _control(self, queue: _Queue) -> None:
        for _ in range(self._avail_count(queue)):
            chain = self._walk(queue, self._avail_head(queue, queue.last_avail))
            if chain.readable_len < 2 or chain.capacity < 1 or chain.readable_len > 64 * 1024:
                raise _Violation(f"queue {queue.index} ({queue.name}): chain at descriptor {chain.head}: a "
                                 f"command needs a class/cmd header and a 1-byte ack buffer, found "
                                 f"{chain.readable_len} readable and {chain.capacity} writable bytes")
            request = self._gather(chain.readable)
            cls, cmd, data = request[0], request[1], request[2:]
            ack = self._control_answer(cls, cmd, data)
            self.ctrl_commands.append(CtrlCommand(cls, cmd, data, ack))
            self._scatter(chain.writable, bytes([ack]))
            queue.last_avail = (queue.last_avail + 1) & 0xFFFF
            self._put_used(queue, [(chain, 1)])

    def _control_answer(self, cls: int, cmd: int, data: bytes) -> int:
        """Apply a command as QEMU would; VIRTIO_NET_ERR for what was not negotiated or is malformed."""
        features, f = self._guest_features, self.rx_filter
        if cls == VIRTIO_NET_CTRL_RX and len(data) == 1:
            needed = VIRTIO_NET_F_CTRL_RX if cmd <= VIRTIO_NET_CTRL_RX_ALLMULTI else VIRTIO_NET_F_CTRL_RX_EXTRA
            attr = {VIRTIO_NET_CTRL_RX_PROMISC: "promisc", VIRTIO_NET_CTRL_RX_ALLMULTI: "allmulti",
                    VIRTIO_NET_CTRL_RX_ALLUNI: "alluni", VIRTIO_NET_CTRL_RX_NOMULTI: "nomulti",
                    VIRTIO_NET_CTRL_RX_NOUNI: "nouni", VIRTIO_NET_CTRL_RX_NOBCAST: "nobcast"}.get(cmd)
            if attr is None or not features & bit(needed):
                return VIRTIO_NET_ERR
            setattr(f, attr, bool(data[0]))
            return VIRTIO_NET_OK
        if cls == VIRTIO_NET_CTRL_MAC and cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET:
            tables = _parse_mac_tables(data)
            if tables is None or not features & bit(VIRTIO_NET_F_CTRL_RX):
                return VIRTIO_NET_ERR
            f.unicast, f.multicast = tables
            return VIRTIO_NET_OK
        if cls == VIRTIO_NET_CTRL_VLAN and len(data) == 2 and features & bit(VIRTIO_NET_F_CTRL_VLAN):
            vid = _U16.unpack(data)[0]
            if vid >= 4096 or cmd not in (VIRTIO_NET_CTRL_VLAN_ADD, VIRTIO_NET_CTRL_VLAN_DEL):
                return VIRTIO_NET_ERR
            (f.vlans.add if cmd == VIRTIO_NET_CTRL_VLAN_ADD else f.vlans.discard)(vid)
            return VIRTIO_NET_OK
        return VIRTIO_NET_ERR

    # -- RX -------------------------------------------------------------------------------------

    def _recv_frame(self) -> Optional[bytes]:
        try:
            n = self._res.sock.recv_into(self._rx_buf)
        except (BlockingIOError, InterruptedError):
            return None
        if n > MAX_FRAME:
            self.rx_dropped += 1        # no Ethernet frame is that long
            return None
        return bytes(self._rx_buf[:n])

    def _receive_burst(self, queue: _Queue) -> None:
        for _ in range(RX_BURST):
            if self._rx_pending is None:
                self._rx_pending = self._recv_frame()
                if self._rx_pending is None:
                    return
            if not self._deliver(queue, self._rx_pending):
                return                           # no buffers: wait for the driver's RX kick
            self._rx_pending = None
        self._rx_more = True

    def _deliver(self, queue: _Queue, frame: bytes) -> bool:
        """Write ``frame`` into posted RX buffers. False: not enough buffers yet (frame kept)."""
        if not self._accepts(frame):
            self.rx_filtered += 1
            return True
        header_len = self._header_len()
        mergeable = header_len == VIRTIO_NET_HDR_MRG_RXBUF_LEN
        needed = header_len + len(frame)
        available = self._avail_count(queue)
        chains: list[Chain] = []
        room = 0
        while room < needed and len(chains) < (available if mergeable else min(available, 1)):
            chain = self._walk(queue, self._avail_head(queue, queue.last_avail + len(chains)))
            if chain.readable:
                raise _Violation(f"queue {queue.index} ({queue.name}): chain at descriptor {chain.head}: "
                                 f"RX chain has device-readable buffers")
            if not chains and chain.capacity < header_len:
                raise _Violation(f"queue {queue.index} ({queue.name}): chain at descriptor {chain.head}: "
                                 f"{chain.capacity} bytes cannot hold the {header_len}-byte virtio-net header")
            chains.append(chain)
            room += chain.capacity
        if room < needed:
            if not chains:
                return False
            if mergeable and available < queue.num:
                return False                     # more buffers may come
            # A non-mergeable chain, or a whole ring, too small for the frame: QEMU drops it too.
            self.rx_dropped += 1
            return True
        header = bytearray(header_len)
        if mergeable:
            _U16.pack_into(header, VIRTIO_NET_HDR_LEN, len(chains))
        data = bytes(header) + frame
        used, done = [], 0
        for chain in chains:
            n = min(chain.capacity, len(data) - done)
            self._scatter(chain.writable, data[done:done + n])
            used.append((chain, n))
            done += n
        queue.last_avail = (queue.last_avail + len(chains)) & 0xFFFF
        self._put_used(queue, used)
        self.frames_rx += 1
        return True

    def _accepts(self, frame: bytes) -> bool:
        """QEMU's receive_filter: the RX mode and MAC/VLAN tables the driver set."""
        f = self.rx_filter
        if f.promisc:
            return True
        if (self._guest_features & bit(VIRTIO_NET_F_CTRL_VLAN) and frame[12:14] == _ETH_P_8021Q
                and len(frame) >= 16 and _vlan_id(frame) not in f.vlans):
            return False
        dest = frame[:6]
        if len(dest) < 6:
            return False
        if dest == _BROADCAST:
            return not f.nobcast
        if dest[0] & 1:
            return not f.nomulti and (f.allmulti or dest in f.multicast)
        return not f.nouni and (f.alluni or dest == self.mac or dest in f.unicast)


def _check_cfg_access(offset: int, size: int) -> None:
    if size not in (1, 2, 4):
        raise ValueError(f"PCI config access size must be 1, 2 or 4, not {size}")
    if offset < 0 or offset + size > CONFIG_SPACE_SIZE:
        raise ValueError(f"PCI config access of {size} bytes at {offset:#x} is outside the "
                         f"{CONFIG_SPACE_SIZE}-byte config space")


def _check_io_size(size: int) -> None:
    if size not in (1, 2, 4):
        raise ValueError(f"I/O port access size must be 1, 2 or 4, not {size}")


def _drain(fd: int) -> None:
    try:
        os.eventfd_read(fd)
    except (BlockingIOError, OSError):
        pass


def _parse_mac(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"MAC must look like 52:54:00:12:34:56, not {mac!r}")
    return bytes(int(p, 16) for p in parts)


def _parse_mac_tables(data: bytes) -> Optional[tuple[list[bytes], list[bytes]]]:
    """VIRTIO_NET_CTRL_MAC_TABLE_SET: unicast then multicast, each u32 count + count MACs; None if malformed."""
    tables, at = [], 0
    for _ in range(2):
        if at + 4 > len(data):
            return None
        count = struct.unpack_from("<I", data, at)[0]
        at += 4
        if at + 6 * count > len(data):
            return None
        tables.append([data[at + 6 * i:at + 6 * i + 6] for i in range(count)])
        at += 6 * count
    return (tables[0], tables[1]) if at == len(data) else None


def _vlan_id(frame: bytes) -> int:
    return struct.unpack_from("!H", frame, 14)[0] & 0xFFF


def _complete_checksum(frame: bytes, start: int, offset: int) -> bytes:
    """What CSUM offload does: fold the one's-complement sum from ``start`` (the field holds the
    pseudo-header sum) and store its complement at ``start + offset``."""
    out = bytearray(frame)
    data = out[start:] + (b"\0" if (len(out) - start) % 2 else b"")
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    struct.pack_into("!H", out, start + offset, ~total & 0xFFFF)
    return bytes(out)


def _bits(mask: int) -> str:
    return "{" + ", ".join(str(i) for i in range(64) if mask >> i & 1) + "}"
