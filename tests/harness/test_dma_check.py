"""The DMA guard on its own: the device sees only shadow rings the guard filled
from chains it checked, and the driver sees what the device used when its
interrupt handler reads the ISR."""

import pytest

from porter.harness.dma_check import SHADOW_AREA, DmaGuard
from porter.harness.memory import GuestMemory
from porter.harness.pci import PCI_BASE_ADDRESS_0
from porter.harness.virtio_pci import (
    VIRTIO_PCI_HOST_FEATURES, VIRTIO_PCI_ISR, VIRTIO_PCI_QUEUE_NOTIFY, VIRTIO_PCI_QUEUE_NUM,
    VIRTIO_PCI_QUEUE_PFN, VIRTIO_PCI_QUEUE_SEL, VIRTIO_PCI_STATUS, VIRTIO_RING_F_EVENT_IDX, bit)
from porter.harness.vring import U16, VRING_DESC, VRING_USED_ELEM, VringLayout

IO = 0xC000
NUM = 8
ARENA = 1 << 20
RING_PFN = 2
GOOD, BAD = 5 * 4096, 40 * 4096          # an allocated page, a page the DDE never handed out


class RegisterLog:
    """The device side of the guard: answers the queue size and offers every
    feature, records what reaches it. (The guard is under test here; the real
    backends are tested with it in the rigs.)"""

    def __init__(self):
        self.writes = []

    def io_read(self, port, size):
        if port == IO + VIRTIO_PCI_QUEUE_NUM:
            return NUM
        if port == IO + VIRTIO_PCI_QUEUE_PFN:
            return self.ring().desc >> 12
        return 0xFFFFFFFF if port == IO + VIRTIO_PCI_HOST_FEATURES else 0

    def io_write(self, port, value, size):
        self.writes.append((port - IO, value))

    def cfg_write(self, offset, value, size):
        pass

    def notified(self):
        return [v for off, v in self.writes if off == VIRTIO_PCI_QUEUE_NOTIFY]

    def ring(self):
        """The ring the device was given, as the device would place it."""
        pfn = [v for off, v in self.writes if off == VIRTIO_PCI_QUEUE_PFN][-1]
        return VringLayout.from_pfn(pfn, NUM)


@pytest.fixture
def ring():
    with GuestMemory(ARENA + SHADOW_AREA) as mem:
        bitmap = bytearray(4096)
        for page in range(1, 16):                       # the allocation map: pages 1-15 are the DDE's
            bitmap[page // 8] |= 1 << (page % 8)
        mem.write(0, bitmap)
        dev = RegisterLog()
        guard = DmaGuard(dev, mem, arena_size=ARENA)
        guard.cfg_write(PCI_BASE_ADDRESS_0, IO | 1, 4)
        guard.io_write(IO + VIRTIO_PCI_QUEUE_SEL, 0, 2)
        guard.io_write(IO + VIRTIO_PCI_QUEUE_PFN, RING_PFN, 4)
        lay = VringLayout.at(RING_PFN * 4096, NUM)
        mem.pack(VRING_DESC, lay.desc, GOOD, 100, 0, 0)                      # descriptor 0: fine
        mem.pack(VRING_DESC, lay.desc + VRING_DESC.size, BAD, 100, 0, 0)     # descriptor 1: not the DDE's
        yield mem, dev, guard, lay


def post(mem, lay, heads):
    for pos, head in enumerate(heads):
        mem.pack(U16, lay.avail_ring(pos), head)
    mem.pack(U16, lay.avail_idx, len(heads))


def test_the_device_is_given_a_shadow_ring_past_the_arena_and_the_driver_reads_back_its_own(ring):
    mem, dev, guard, lay = ring
    shadow = dev.ring()
    assert shadow.desc >= ARENA and shadow.desc + shadow.size <= mem.size
    assert guard.io_read(IO + VIRTIO_PCI_QUEUE_PFN, 4) == RING_PFN


def test_a_good_chain_reaches_the_device_as_it_was_when_checked(ring):
    mem, dev, guard, lay = ring
    post(mem, lay, [0])
    guard.io_write(IO + VIRTIO_PCI_QUEUE_NOTIFY, 0, 2)
    assert guard.violations == [] and dev.notified() == [0] and guard.chains_checked == 1
    shadow = dev.ring()
    assert mem.unpack(U16, shadow.avail_idx) == (1,) and mem.unpack(U16, shadow.avail_ring(0)) == (0,)
    assert mem.unpack(VRING_DESC, shadow.desc) == (GOOD, 100, 0, 0)
    # the driver rewrites the descriptor after the check: the device still has what was checked
    mem.pack(VRING_DESC, lay.desc, BAD, 100, 0, 0)
    assert mem.unpack(VRING_DESC, shadow.desc) == (GOOD, 100, 0, 0)


def test_bad_chain_never_reaches_the_device_and_stops_its_queue(ring):
    mem, dev, guard, lay = ring
    post(mem, lay, [0, 1])
    guard.io_write(IO + VIRTIO_PCI_QUEUE_NOTIFY, 0, 2)
    assert [str(v) for v in guard.violations] == [
        f"queue 0 descriptor 1: [{BAD:#x}, +100) touches page 40, which the DDE has not allocated"]
    assert dev.notified() == [] and guard.chains_checked == 2
    shadow = dev.ring()
    assert mem.unpack(U16, shadow.avail_idx) == (1,)      # the good chain before it, not the bad one
    # as behind an IOMMU that faulted: later good chains do not get through either
    mem.pack(U16, lay.avail_ring(2), 0)
    mem.pack(U16, lay.avail_idx, 3)
    guard.io_write(IO + VIRTIO_PCI_QUEUE_NOTIFY, 0, 2)
    assert dev.notified() == [] and mem.unpack(U16, shadow.avail_idx) == (1,)


def test_what_the_device_used_reaches_the_driver_when_its_interrupt_handler_reads_the_isr(ring):
    mem, dev, guard, lay = ring
    post(mem, lay, [0])
    guard.io_write(IO + VIRTIO_PCI_QUEUE_NOTIFY, 0, 2)
    shadow = dev.ring()
    mem.pack(VRING_USED_ELEM, shadow.used_ring(0), 0, 42)        # the device used chain 0
    mem.pack(U16, shadow.used_idx, 1)
    assert mem.unpack(U16, lay.used_idx) == (0,)                 # not yet
    guard.io_read(IO + VIRTIO_PCI_ISR, 1)
    assert mem.unpack(U16, lay.used_idx) == (1,) and mem.unpack(VRING_USED_ELEM, lay.used_ring(0)) == (0, 42)


def test_event_idx_is_not_offered_through_the_guard(ring):
    mem, dev, guard, lay = ring
    features = guard.io_read(IO + VIRTIO_PCI_HOST_FEATURES, 4)
    assert not features & bit(VIRTIO_RING_F_EVENT_IDX) and features & 1


def test_a_reset_forgets_the_rings(ring):
    mem, dev, guard, lay = ring
    guard.io_write(IO + VIRTIO_PCI_STATUS, 0, 1)
    guard.io_write(IO + VIRTIO_PCI_QUEUE_NOTIFY, 0, 2)
    assert dev.notified() == [] and "no ring address" in str(guard.violations[-1])


def test_a_ring_outside_the_arena_is_refused(ring):
    mem, dev, guard, lay = ring
    guard.io_write(IO + VIRTIO_PCI_QUEUE_SEL, 1, 2)
    guard.io_write(IO + VIRTIO_PCI_QUEUE_PFN, ARENA >> 12, 4)
    assert guard.violations[-1].descriptor == "ring" and "outside the arena" in str(guard.violations[-1])
    assert [v for off, v in dev.writes if off == VIRTIO_PCI_QUEUE_PFN] == [dev.ring().desc >> 12]
