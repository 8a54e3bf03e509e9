"""The `sim` virtio-rng: a Python model of legacy virtio-rng-pci whose entropy is what the test gives it, deterministic and able to misbehave.

The device fills each buffer the driver posts on its one queue with the
next bytes of its source, in order: bytes the test ``feed()``s, or, with a
``source``, bytes it asks for. Without bytes it waits, buffers stay
posted, as a real device behind an empty entropy pool does. What is common
to every device (registers, queues, interrupts, the worker, the hostile
switches: ``oversize_len``, ``bad_used_id``, ``no_interrupts``, ...) is
``virtio_device.VirtioPciDevice``.
"""

from __future__ import annotations

from typing import Callable, Optional

from porter.harness.pci import PCI_CLASS_OTHERS
from porter.harness.virtio_device import VirtioPciDevice
from porter.harness.virtio_pci import (VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_ID_RNG, VIRTIO_PCI_DEVICE_RNG,
                                       VIRTIO_RING_F_INDIRECT_DESC, bit)
from porter.harness.virtio_rng import QEMU_QUEUE_SIZE, QUEUE_NAMES, VIRTIO_RNG_QUEUE
from porter.harness.vring import DeviceQueue, RingViolation

# What the model implements (QEMU also offers EVENT_IDX, which the sim does not model).
SUPPORTED_FEATURES = bit(VIRTIO_F_NOTIFY_ON_EMPTY) | bit(VIRTIO_RING_F_INDIRECT_DESC)
DEFAULT_FEATURES = SUPPORTED_FEATURES


class SimRngDevice(VirtioPciDevice):
    """A legacy virtio-rng-pci device (1af4:1005) modelled in Python.

    ``source(n)``, if given, returns up to n further bytes whenever the fed
    ones run out (b"": none for now). ``faults`` are ``virtio_device.Faults``
    fields.

    What tests look at, besides the base's: ``bytes_out`` (bytes written
    into buffers), ``fills`` (buffers used), ``pending`` (bytes fed, not
    yet handed out).
    """

    PCI_DEVICE_ID = VIRTIO_PCI_DEVICE_RNG
    VIRTIO_ID = VIRTIO_ID_RNG
    CLASS_CODE = PCI_CLASS_OTHERS
    SUPPORTED_FEATURES = SUPPORTED_FEATURES

    def __init__(self, *, features: int = DEFAULT_FEATURES, queue_size: int = QEMU_QUEUE_SIZE,
                 source: Optional[Callable[[int], bytes]] = None, **faults: object) -> None:
        self.source = source
        self.bytes_out = self.fills = 0
        self._pending = bytearray()
        super().__init__(features=features, queue_size=queue_size, faults=faults)

    def __repr__(self) -> str:
        return f"SimRngDevice(features={self.features:#x}, {self.bytes_out} bytes out)"

    # -- the model's part of VirtioPciDevice -----------------------------------------------

    def queue_names(self) -> list[str]:
        return list(QUEUE_NAMES)

    def config_bytes(self) -> bytes:
        return b""                       # virtio-rng has no device config

    def queue_work(self, index: int) -> Optional[Callable[[DeviceQueue], None]]:
        return self._fill if index == VIRTIO_RNG_QUEUE else None

    # -- what tests do to the device ----------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Entropy for the device to hand out, after what it has."""
        with self._lock:
            self._pending += data
            self.kick_again(VIRTIO_RNG_QUEUE)     # buffers may be waiting for it
        self._wake()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    # -- the queue -------------------------------------------------------------------------------

    def _take(self, n: int) -> bytes:
        if not self._pending and self.source is not None:
            self._pending += self.source(n)
        out = bytes(self._pending[:n])
        del self._pending[:n]
        return out

    def _fill(self, queue: DeviceQueue) -> None:
        for _ in range(queue.avail_count(self._ram)):
            chain = self.chain(queue)
            if chain.readable or not chain.capacity:
                raise RingViolation(f"{queue.label}: chain at descriptor {chain.head}: the device only writes; "
                                    f"the chain has {chain.readable_len} device-readable and "
                                    f"{chain.capacity} device-writable bytes")
            data = self._take(chain.capacity)
            if not data:
                return                   # no entropy: the buffer waits for some
            written = self.scatter(chain.writable, data)
            queue.take()
            self.put_used(queue, [(chain, written)])
            self.bytes_out += written
            self.fills += 1
