"""The harness's own virtio-blk driver (BlkRingDriver) on each backend, no DDE involved:
the sim must answer as QEMU's virtio-blk-pci does (config, data, the status byte for
a request beyond the end or a write to a read-only disk), and the sim's limits and
lies show as the driver sees them."""

import os

import pytest

from porter.harness.machine import Machine
from porter.harness.memory import GuestMemory
from porter.harness.rig import blk_device
from porter.harness.ring_driver import BlkRingDriver
from porter.harness.sim_blk import BAD_STATUS
from porter.harness.virtio_blk import (SECTOR, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN,
                                       VIRTIO_BLK_T_OUT)

IMAGE = 4 << 20


@pytest.fixture
def ring(backend_ready, tmp_path):
    """make(read_only=False, **sim options) -> (BlkRingDriver started, device, image path, its bytes)."""
    made = []

    def make(read_only=False, **options):
        image = tmp_path / f"disk{len(made)}.img"
        data = os.urandom(IMAGE)
        image.write_bytes(data)
        memory = GuestMemory(16 << 20)
        dev = blk_device(backend_ready, image, read_only=read_only, options=options)
        made.append((memory, dev))
        dev.sync_memory(memory)
        machine = Machine(memory)
        made.append((machine, None))
        slot = machine.attach(dev)
        drv = BlkRingDriver(dev, memory, io_base=slot.io_base, irq_fd=slot.irq_fd,
                            resample_fd=slot.resample_fd, max_bytes=64 << 10).start()
        return drv, dev, image, data
    yield make
    for thing, dev in reversed(made):
        if dev is not None:
            dev.close()
        thing.close()


def test_config_reads_and_writes_as_the_file(ring):
    drv, _, image, data = ring()
    assert drv.capacity * SECTOR == IMAGE and drv.block_size == SECTOR and not drv.read_only
    assert drv.read(0, 64 << 10) == data[:64 << 10]
    assert drv.read(drv.capacity - 1, SECTOR) == data[-SECTOR:]
    payload = os.urandom(8192)
    assert drv.write(100, payload) == VIRTIO_BLK_S_OK
    assert drv.flush() == VIRTIO_BLK_S_OK
    assert image.read_bytes()[100 * SECTOR:100 * SECTOR + 8192] == payload
    assert drv.read(100, 8192) == payload


def test_beyond_the_end_is_an_io_error(ring):
    drv, _, image, data = ring()
    for sector, nbytes in ((drv.capacity, SECTOR), (drv.capacity - 1, 2 * SECTOR)):
        assert drv.request(VIRTIO_BLK_T_IN, sector, nbytes).status == VIRTIO_BLK_S_IOERR
        assert drv.write(sector, b"\x01" * nbytes) == VIRTIO_BLK_S_IOERR
    assert image.read_bytes() == data


def test_read_only_disk_refuses_writes(ring):
    drv, _, image, data = ring(read_only=True)
    assert drv.read_only
    assert drv.write(0, b"\x02" * 4096) == VIRTIO_BLK_S_IOERR
    assert drv.read(0, 4096) == data[:4096]
    assert image.read_bytes() == data


@pytest.mark.backends("sim")
def test_sim_refuses_a_buffer_beyond_size_max(ring):
    drv, dev, _, _ = ring(size_max=4096)
    assert drv.read(0, 4096)
    assert drv.request(VIRTIO_BLK_T_OUT, 0, data=b"\x03" * 8192).status == VIRTIO_BLK_S_IOERR
    assert any("size_max is 4096" in e for e in dev.errors)


@pytest.mark.backends("sim")
def test_sim_bad_status_byte(ring):
    drv, dev, _, data = ring()
    dev.faults.bad_status = True
    done = drv.request(VIRTIO_BLK_T_IN, 0, 4096)
    assert done.status == BAD_STATUS
    assert drv.read_data(done.slot, 4096) == data[:4096]          # the data moved all the same
