"""The sim virtio-rng on its own (no QEMU, no driver host): SimRngDevice driven by the harness's
RngRingDriver, as the benchmark's ring loop drives it. The bytes fed come out in used-ring order;
without entropy the buffers wait; the hostile switches reach the ring (the ring driver refuses
what it must)."""

import os

import pytest

from porter.harness.machine import Machine
from porter.harness.memory import GuestMemory
from porter.harness.pci import PCI_CLASS_OTHERS
from porter.harness.ring_driver import DeviceError, RngRingDriver
from porter.harness.sim_rng import SimRngDevice
from porter.harness.virtio_pci import VIRTIO_ID_RNG, VIRTIO_PCI_DEVICE_RNG


@pytest.fixture
def ring():
    """(sim, started RngRingDriver) on a Machine, as the driver host would find the device."""
    made = []

    def build(**sim_kwargs):
        memory = GuestMemory(8 << 20)
        sim = SimRngDevice(**sim_kwargs)
        sim.sync_memory(memory)
        machine = Machine(memory)
        slot = machine.attach(sim)
        made.append((memory, sim, machine))
        driver = RngRingDriver(sim, memory, io_base=slot.io_base, irq_fd=slot.irq_fd,
                               resample_fd=slot.resample_fd, buffer_size=1024)
        return sim, driver.start()

    yield build
    for memory, sim, machine in made:
        machine.close()
        sim.close()
        memory.close()


def test_identity_is_a_legacy_virtio_rng(ring):
    sim, _ = ring()
    assert sim.cfg_read(2, 2) == VIRTIO_PCI_DEVICE_RNG
    assert sim.cfg_read(0x0A, 2) == PCI_CLASS_OTHERS
    assert sim.cfg_read(0x2E, 2) == VIRTIO_ID_RNG          # the subsystem id virtio_pci matches drivers by


def test_bytes_fed_come_out_in_order(ring):
    sim, drv = ring()
    data = os.urandom(64 * 1024 + 17)
    sim.feed(data)
    got = drv.read(len(data))
    assert got == data and sim.bytes_out == len(data) and sim.pending == 0


def test_without_entropy_buffers_wait(ring):
    sim, drv = ring()
    with pytest.raises(TimeoutError):
        drv.read(1, timeout=0.3)
    assert sim.fills == 0 and sim.errors == []
    sim.feed(b"late")
    assert drv.read(4) == b"late"


def test_a_source_is_asked_when_the_fed_bytes_run_out(ring):
    asked = []

    def source(n):
        asked.append(n)
        return bytes(range(256))[:n]

    _, drv = ring(source=source)
    assert drv.read(512)[:256] == bytes(range(256))
    assert asked and max(asked) <= 1024       # never more than the buffer it fills


def test_oversize_used_length_is_refused_by_the_ring_driver(ring):
    sim, drv = ring(oversize_len=True)
    sim.feed(os.urandom(4096))
    with pytest.raises(DeviceError, match="exceeds the 1024-byte buffer"):
        drv.read(1024)


def test_bad_used_id_is_refused_by_the_ring_driver(ring):
    sim, drv = ring(bad_used_id=True)
    sim.feed(os.urandom(4096))
    with pytest.raises(DeviceError, match="not the head of a posted chain"):
        drv.read(1024)


def test_no_interrupts_leave_the_used_ring_unsignalled(ring):
    sim, drv = ring(no_interrupts=True)
    sim.feed(os.urandom(1024))
    assert drv.wait_interrupt(0.3) is None
    assert sim.fills == 1 and sim.interrupts == 0
    assert len(drv.poll()) == 1024              # the bytes are there for a driver that polls
