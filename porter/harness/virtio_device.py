"""What every modelled legacy virtio-pci device shares: config space, the register file, ISR and INTx, queues, a worker.

A device model (``sim_net.SimNetDevice``, ...) subclasses ``VirtioPciDevice``
and says what is its own: its IDs and features, its device config, the
work behind each queue, any work of its own (a frame from the wire), and
the fds its worker waits on. It then offers the harness what ``QemuDevice``
offers (config space, I/O ports at the address programmed into BAR0, guest
memory, an INTx irqfd with resample), so ``Machine.attach()`` takes either.

Unlike QEMU a model checks every ring access strictly: a descriptor outside
guest memory, an out-of-range id, a looping chain or a malformed request is
recorded in ``errors`` and stops that queue until a reset. ``faults`` (a
``Faults``) make it break the virtio contract on purpose, at run time, so
tests can prove a driver fails cleanly.
"""

from __future__ import annotations

import mmap
import os
import random
import select
import shutil
import tempfile
import threading
import weakref
from dataclasses import dataclass, field, fields
from typing import Callable, Optional

from porter.harness.memory import GuestMemory
from porter.harness.pci import ConfigSpace, all_ones, check_io_size
from porter.harness.virtio_pci import (
    VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED, VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_PCI_CONFIG,
    VIRTIO_PCI_GUEST_FEATURES, VIRTIO_PCI_HOST_FEATURES, VIRTIO_PCI_ISR, VIRTIO_PCI_ISR_CONFIG,
    VIRTIO_PCI_ISR_QUEUE, VIRTIO_PCI_QUEUE_NOTIFY, VIRTIO_PCI_QUEUE_NUM, VIRTIO_PCI_QUEUE_PFN,
    VIRTIO_PCI_QUEUE_SEL, VIRTIO_PCI_STATUS, VIRTIO_PCI_VENDOR, VIRTIO_RING_F_INDIRECT_DESC, bit, bits,
    legacy_bar_size)
from porter.harness.vring import MAX_QUEUE_SIZE, Chain, DeviceQueue, RingViolation, UsedFaults

STORM_PERIOD_MS = 1          # interrupt_storm: the line comes back this soon after every EOI


@dataclass
class Faults(UsedFaults):
    """Ways to break the virtio contract on purpose; change them at run time through ``device.faults``.

    The used-ring faults come from ``UsedFaults``; these act on the rest.
    """
    garbage_config: bool = False    # device config reads return junk, new junk each read
    no_interrupts: bool = False     # never write the irqfd
    interrupt_storm: bool = False   # keep the line up with ISR_QUEUE set though nothing was used

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        wake = self.__dict__.get("_wake")
        if wake is not None:                    # a switch flipped at run time acts now
            wake()


@dataclass
class _Resources:
    """What must go away with the device; the finalizer holds this, never the device."""
    workdir: str
    stop_fd: int
    wake_fd: int
    fds: list[int] = field(default_factory=list)            # our dups of the irqfds
    owned: list = field(default_factory=list)              # the model's wires: anything with close()
    thread: Optional[threading.Thread] = None


def _cleanup(res: _Resources) -> None:
    if res.thread is not None and res.thread.is_alive():
        os.eventfd_write(res.stop_fd, 1)
        res.thread.join(5.0)
    for thing in res.owned:
        thing.close()
    for fd in [res.stop_fd, res.wake_fd] + res.fds:
        try:
            os.close(fd)
        except OSError:
            pass
    res.fds.clear()
    shutil.rmtree(res.workdir, ignore_errors=True)


def _drain(fd: int) -> None:
    try:
        os.eventfd_read(fd)
    except (BlockingIOError, OSError):
        pass


class VirtioPciDevice:
    """A legacy virtio-pci device (1af4:10xx, I/O BAR0 with the register block and device config, INTA).

    Subclasses set ``PCI_DEVICE_ID``, ``VIRTIO_ID``, ``CLASS_CODE``,
    ``SUPPORTED_FEATURES`` and ``FAULTS``, and implement ``queue_names``,
    ``config_bytes`` and ``queue_work``; they may override ``config_write``,
    ``device_reset``, ``poll_fds``, ``poll_timeout``, ``device_work`` and
    ``open_resources``. Everything those hooks do runs under ``self._lock``.

    What tests look at: ``errors`` (device errors, one string each),
    ``queue_broken(i)``, ``notifies`` (queue kicks), ``interrupts`` (irqfd writes),
    ``spurious_interrupts`` (those of interrupt_storm).
    """

    PCI_DEVICE_ID: int
    VIRTIO_ID: int
    CLASS_CODE: int
    SUPPORTED_FEATURES: int
    FAULTS: type = Faults

    def __init__(self, *, features: int, queue_size: int, faults: dict[str, object]) -> None:
        name = type(self).__name__
        unsupported = features & ~self.SUPPORTED_FEATURES
        if unsupported:
            raise ValueError(f"{name} cannot offer feature bits {bits(unsupported)}; "
                             f"it implements {bits(self.SUPPORTED_FEATURES)}")
        if queue_size <= 0 or queue_size & (queue_size - 1) or queue_size > MAX_QUEUE_SIZE:
            raise ValueError(f"queue size must be a power of two up to {MAX_QUEUE_SIZE}, not {queue_size}")
        known = {f.name for f in fields(self.FAULTS)}
        if set(faults) - known:
            raise TypeError(f"unknown fault(s) {sorted(set(faults) - known)}; known: {sorted(known)}")
        self.features = features
        self.queue_size = queue_size
        self.faults = self.FAULTS(**faults)
        self.faults.__dict__["_wake"] = self._wake
        self.errors: list[str] = []
        self.notifies = self.interrupts = 0
        self.spurious_interrupts = 0              # interrupt_storm's: raised with nothing used

        self._lock = threading.Lock()
        self._junk = random.Random(0x5EED)        # garbage_config: deterministic junk
        self._ram: Optional[mmap.mmap] = None
        self._irq_fd: Optional[int] = None
        self._resample_fd: Optional[int] = None
        self._line_up = False                     # irqfd written since the last EOI
        self._kicked: set[int] = set()
        self._closed = False
        self._cfg = ConfigSpace(vendor=VIRTIO_PCI_VENDOR, device=self.PCI_DEVICE_ID,
                                class_code=self.CLASS_CODE, subsystem_vendor=VIRTIO_PCI_VENDOR,
                                subsystem_id=self.VIRTIO_ID,
                                io_bar_size=legacy_bar_size(len(self.config_bytes())))
        self._reset_state()

        self._res = _Resources(tempfile.mkdtemp(prefix="porter-sim-"),
                               os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK),
                               os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK))
        self._finalizer = weakref.finalize(self, _cleanup, self._res)
        try:
            self.open_resources(self._res.workdir, self._res.owned)
            self._res.thread = threading.Thread(target=self._run, name=f"sim-{name}-{id(self):x}", daemon=True)
            self._res.thread.start()
        except BaseException:
            self._finalizer()
            raise

    # -- what a device model says about itself -------------------------------------

    def queue_names(self) -> list[str]:
        """The device's queues, in index order (may depend on ``self.features``)."""
        raise NotImplementedError

    def config_bytes(self) -> bytes:
        """The device config as the offered features make it exist (read at VIRTIO_PCI_CONFIG)."""
        raise NotImplementedError

    def queue_work(self, index: int) -> Optional[Callable[[DeviceQueue], None]]:
        """What serves a kick of queue ``index``; None: a kick only says "buffers posted"."""
        raise NotImplementedError

    def config_write(self, offset: int, data: bytes) -> None:
        """A driver wrote the device config; read-only unless a model says otherwise."""

    def device_reset(self) -> None:
        """Forget the device's own state at a virtio reset (queues and registers are the base's)."""

    def open_resources(self, workdir: str, owned: list) -> None:
        """Open what the model needs (a wire); what it puts in ``owned`` is closed with the device."""

    def poll_fds(self) -> list[int]:
        """Further fds the worker wakes on (a wire with data)."""
        return []

    def poll_timeout(self) -> Optional[int]:
        """Milliseconds until the model wants to run again without a wake-up; None: no need."""
        return None

    def device_work(self, ready: set[int]) -> None:
        """Work not started by a kick (``ready``: fds that woke the worker); runs after the kicks."""

    # -- life cycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker, close the model's wires and the irqfd copies, unmap guest memory. Idempotent."""
        with self._lock:
            self._closed = True
        self._finalizer()
        with self._lock:
            if self._ram is not None:
                self._ram.close()
                self._ram = None
            self._irq_fd = self._resample_fd = None

    def __enter__(self):
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
        """INTx: the device writes ``irq_fd`` when the line rises; a write to ``resample_fd`` is the EOI."""
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

    def config_changed(self) -> None:
        """Raise a configuration-change interrupt, as a device does after changing its config (once running)."""
        with self._lock:
            if self._status & VIRTIO_CONFIG_S_DRIVER_OK:
                self._set_isr(VIRTIO_PCI_ISR_CONFIG)

    def queue_broken(self, index: int) -> Optional[str]:
        """Why queue ``index`` stopped (its device error), or None while it runs."""
        with self._lock:
            return self._queues[index].broken if 0 <= index < len(self._queues) else None

    @property
    def guest_features(self) -> int:
        return self._guest_features

    def negotiated(self, feature: int) -> bool:
        return bool(self._guest_features & bit(feature))

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the {type(self).__name__} is closed")

    def _wake(self) -> None:
        try:
            os.eventfd_write(self._res.wake_fd, 1)
        except OSError:          # closed under us: the worker is gone anyway
            pass

    def _reset_state(self) -> None:
        """Virtio reset (status 0): forget features, rings, ISR and the model's state."""
        self._status = 0
        self._guest_features = 0
        self._queue_sel = 0
        self._isr = 0
        self._kicked.clear()
        self._queues = [DeviceQueue(i, name, self.queue_size) for i, name in enumerate(self.queue_names())]
        self.device_reset()

    # -- PCI config space ------------------------------------------------------------------

    def cfg_read(self, offset: int, size: int) -> int:
        with self._lock:
            return self._cfg.read(offset, size, interrupt_pending=bool(self._isr))

    def cfg_write(self, offset: int, value: int, size: int) -> None:
        with self._lock:
            self._check_open()
            intx_was_disabled = self._cfg.intx_disabled
            self._cfg.write(offset, value, size)
            if intx_was_disabled and not self._cfg.intx_disabled and self._isr:
                self._raise_irq()        # the line was high all along, only masked

    # -- I/O BAR0: the register block and device config ---------------------------------------

    def io_read(self, port: int, size: int) -> int:
        check_io_size(size)
        with self._lock:
            self._check_open()
            offset = self._cfg.io_bar_offset(port, size)
            if offset is None:
                return all_ones(size)                 # nobody decodes it: the bus floats high
            if offset >= VIRTIO_PCI_CONFIG:
                return self._config_read(offset - VIRTIO_PCI_CONFIG, size)
            # Registers answer at their own offset only, truncated to the access size, as QEMU's do.
            return self._register_read(offset) & all_ones(size)

    def io_write(self, port: int, value: int, size: int) -> None:
        check_io_size(size)
        with self._lock:
            self._check_open()
            offset = self._cfg.io_bar_offset(port, size)
            if offset is None:
                return
            value &= all_ones(size)
            if offset >= VIRTIO_PCI_CONFIG:
                self.config_write(offset - VIRTIO_PCI_CONFIG, value.to_bytes(size, "little"))
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
                self.errors.append(f"driver accepted feature bits {bits(value & ~self.features)} "
                                   f"the device did not offer ({self.features:#x}); ignored")
            self._guest_features = value & self.features
        elif offset == VIRTIO_PCI_QUEUE_PFN:
            queue = self._selected_queue()
            if queue is not None:
                queue.set_pfn(value)
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
            # A 2.6 driver kicks before DRIVER_OK; like QEMU, look at every queue now.
            self._kicked.update(range(len(self._queues)))
        self._wake()

    def _selected_queue(self) -> Optional[DeviceQueue]:
        return self._queues[self._queue_sel] if self._queue_sel < len(self._queues) else None

    def _config_read(self, offset: int, size: int) -> int:
        config = self.config_bytes()
        if offset + size > len(config):
            return all_ones(size)
        if self.faults.garbage_config:
            return self._junk.getrandbits(8 * size)
        return int.from_bytes(config[offset:offset + size], "little")

    # -- interrupts ------------------------------------------------------------------------------

    def _set_isr(self, bits_: int) -> None:
        was = self._isr
        self._isr |= bits_
        if not was:
            self._raise_irq()

    def _raise_irq(self) -> None:
        if self._irq_fd is None or self.faults.no_interrupts or self._cfg.intx_disabled:
            return
        os.eventfd_write(self._irq_fd, 1)
        self._line_up = True
        self.interrupts += 1

    def _storm(self) -> None:
        """interrupt_storm: a queue interrupt for nothing, whenever the driver has acknowledged the last."""
        if self.faults.interrupt_storm and self._running and not self._line_up:
            self._isr |= VIRTIO_PCI_ISR_QUEUE
            self._raise_irq()
            self.spurious_interrupts += 1

    # -- the worker ---------------------------------------------------------------------------------

    @property
    def _running(self) -> bool:
        return bool(self._status & VIRTIO_CONFIG_S_DRIVER_OK and not self._status & VIRTIO_CONFIG_S_FAILED)

    def _run(self) -> None:
        res = self._res
        while True:
            with self._lock:
                watch = [res.stop_fd, res.wake_fd] + self.poll_fds()
                if self._resample_fd is not None:
                    watch.append(self._resample_fd)
                timeout = self.poll_timeout()
                if self.faults.interrupt_storm:
                    timeout = STORM_PERIOD_MS if timeout is None else min(timeout, STORM_PERIOD_MS)
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
                        self._line_up = False
                        if self._isr:               # EOI with the line still high: interrupt again
                            self._raise_irq()
                    self._service(ready)
                    self._storm()
                except Exception as e:      # a model bug must show, not kill the device
                    self.errors.append(f"sim: internal error in the worker: {e!r}")

    def _service(self, ready: set[int]) -> None:
        if self._ram is None or not self._running:
            return                            # kicks stay pending until DRIVER_OK
        kicked, self._kicked = self._kicked, set()
        for index in sorted(kicked):
            work = self.queue_work(index)
            if work is not None:
                self.serve(self._queues[index], work)
        self.device_work(ready)

    def kick_again(self, index: int) -> None:
        """Serve queue ``index`` again on the next pass (its work left chains on the ring)."""
        self._kicked.add(index)

    # -- serving a queue -------------------------------------------------------------------------------

    def serve(self, queue: DeviceQueue, work: Callable[[DeviceQueue], None]) -> None:
        """Run ``work`` on ``queue`` unless it is stopped; a RingViolation stops it; interrupt if used entries went out."""
        if queue.layout is None or queue.broken is not None:
            return
        try:
            queue.check_ring(len(self._ram))
            work(queue)
        except RingViolation as v:
            # Legacy virtio has no NEEDS_RESET status: stopping the queue is what a driver can see.
            self.errors.append(str(v))
            queue.broken = str(v)
        finally:
            if queue.unsignalled and queue.wants_interrupt(self._ram, self.negotiated(VIRTIO_F_NOTIFY_ON_EMPTY)):
                self._set_isr(VIRTIO_PCI_ISR_QUEUE)

    def queue(self, index: int) -> DeviceQueue:
        return self._queues[index]

    def chain(self, queue: DeviceQueue, ahead: int = 0) -> Chain:
        """The next chain on ``queue`` (``ahead`` entries further), checked against guest memory."""
        return queue.chain(self._ram, ahead, self._inside,
                           indirect_ok=self.negotiated(VIRTIO_RING_F_INDIRECT_DESC))

    def put_used(self, queue: DeviceQueue, entries: list[tuple[Chain, int]]) -> None:
        queue.put_used(self._ram, entries, self.faults)

    def _inside(self, addr: int, length: int, kind: str) -> Optional[str]:
        if 0 <= addr and addr + length <= len(self._ram):
            return None
        return f"{kind} lies outside guest memory of {len(self._ram):#x} bytes"

    def gather(self, segments: tuple[tuple[int, int], ...]) -> bytes:
        return b"".join(self._ram[addr:addr + length] for addr, length in segments)

    def scatter(self, segments: tuple[tuple[int, int], ...], data: bytes) -> int:
        """Write ``data`` across ``segments`` in order; the bytes written."""
        done = 0
        for addr, length in segments:
            if done == len(data):
                break
            n = min(length, len(data) - done)
            self._ram[addr:addr + n] = data[done:done + n]
            done += n
        return done
