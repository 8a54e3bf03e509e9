"""The DMA guard on its own: which chains it checks when the driver notifies."""

import pytest

from porter.harness.dma_check import DmaGuard
from porter.harness.memory import GuestMemory
from porter.harness.pci import PCI_BASE_ADDRESS_0
from porter.harness.virtio_pci import (
    VIRTIO_PCI_ISR, VIRTIO_PCI_QUEUE_NOTIFY, VIRTIO_PCI_QUEUE_NUM, VIRTIO_PCI_QUEUE_PFN,
    VIRTIO_PCI_QUEUE_SEL)
from porter.harness.vring import VRING_DESC, VringLayout

IO = 0xC000
NUM = 8
RING_PFN = 2
GOOD, BAD = 5 * 4096, 40 * 4096          # an allocated page, a page the DDE never handed out


class RegisterLog:
    """The device side of the guard: answers the queue size, records what reaches it.
    (The guard is under test here; the real backends are tested with it in the rigs.)"""

    def __init__(self):
        self.writes = []

    def io_read(self, port, size):
        return NUM if port == IO + VIRTIO_PCI_QUEUE_NUM else 0

    def io_write(self, port, value, size):
        self.writes.append((port - IO, value))

    def cfg_write(self, offset, value, size):
        pass


@pytest.fixture
def ring():
    with GuestMemory(1 << 20) as mem:
        bitmap = bytearray(4096)
        for page in range(1, 16):                       # the allocation map: pages 1-15 are the DDE's
            bitmap[page // 8] |= 1 << (page % 8)
        mem.write(0, bitmap)
        dev = RegisterLog()
        guard = DmaGuard(dev, mem)
        guard.cfg_write(PCI_BASE_ADDRESS_0, IO | 1, 4)
        guard.io_write(IO + VIRTIO_PCI_QUEUE_SEL, 0, 2)
        guard.io_write(IO + VIRTIO_PCI_QUEUE_PFN, RING_PFN, 4)
        lay = VringLayout.at(RING_PFN * 4096, NUM)
        mem.pack(VRING_DESC, lay.desc, GOOD, 100, 0, 0)                      # descriptor 0: fine
        mem.pack(VRING_DESC, lay.desc + VRING_DESC.size, BAD, 100, 0, 0)     # descriptor 1: not the DDE's
        yield mem, dev, guard, lay


def post(mem, lay, heads, used):
    for pos, head in enumerate(heads):
        mem.pack("<H", lay.avail_ring(pos), head)
    mem.pack("<H", lay.avail_idx, len(heads))
    mem.pack("<H", lay.used_idx, used)


def test_bad_chain_is_stopped_before_the_device_sees_the_notify(ring):
    mem, dev, guard, lay = ring
    post(mem, lay, [0, 1], used=0)
    guard.io_write(IO + VIRTIO_PCI_QUEUE_NOTIFY, 0, 2)
    assert [str(v) for v in guard.violations] == [
        f"queue 0 descriptor 1: [{BAD:#x}, +100) touches page 40, which the DDE has not allocated"]
    assert (VIRTIO_PCI_QUEUE_NOTIFY, 0) not in dev.writes
    assert guard.chains_checked == 2 and guard.chains_used_unseen == 0


def test_chains_the_device_used_before_any_notify_are_counted_not_flagged(ring):
    mem, dev, guard, lay = ring
    # positions 0 and 1 were taken and returned while notifications were off; the
    # driver may have freed descriptor 1's buffer since: it is not checkable now
    post(mem, lay, [0, 1, 0], used=2)
    guard.io_write(IO + VIRTIO_PCI_QUEUE_NOTIFY, 0, 2)
    assert guard.violations == []
    assert (VIRTIO_PCI_QUEUE_NOTIFY, 0) in dev.writes
    assert guard.chains_used_unseen == 2 and guard.chains_checked == 1
    # a bad chain the device has not returned yet is still caught
    mem.pack("<H", lay.avail_ring(3), 1)
    mem.pack("<H", lay.avail_idx, 4)
    guard.io_write(IO + VIRTIO_PCI_QUEUE_NOTIFY, 0, 2)
    assert len(guard.violations) == 1 and guard.violations[0].descriptor == "1"


def test_interrupt_handler_isr_read_walks_chains_added_without_a_kick(ring):
    mem, dev, guard, lay = ring
    post(mem, lay, [0, 1], used=0)          # added while the device suppressed kicks: no notify
    guard.io_read(IO + VIRTIO_PCI_ISR, 1)
    assert guard.chains_checked == 2 and [v.descriptor for v in guard.violations] == ["1"]
