"""Linux 2.6.32 virtio-blk, ported by porter, running on the real DDE's block layer
once per device backend: QEMU's virtio-blk-pci and porter's sim, each on a raw
image file. The driver host opens the disk by its Mach name and moves sectors as
libmachdev would; the file is read back from Python. Capacity, every sector, writes,
10,000 random requests against a model, seg_max, flush, read-only, the end of the
disk, partitions, DMA safety and the negative control run on both; limits QEMU
cannot be told to set (size_max) and the hostile devices are the sim's (marked so)."""

import dataclasses
import errno
import hashlib
import os
import random
import re
import struct

import pytest

from porter.build import build_host
from porter.emit import emit_tree
from porter.harness.driver_host import BlkError
from porter.harness.rig import BlkRig
from porter.harness.sim_blk import DEFAULT_FEATURES
from porter.harness.virtio_blk import SECTOR, VIRTIO_BLK_CONFIG, VIRTIO_BLK_F_FLUSH
from porter.harness.virtio_pci import bit
from porter.harness.virtio_pci import VIRTIO_PCI_CONFIG
from porter.pipeline import load_inputs, scan_inputs
from porter.plan import plan_port
from porter.rules import RULES_DIR

pytestmark = pytest.mark.upstream

# The random run: 10,000 requests by default (seconds here); PORTER_BLK_REQUESTS for a longer one.
REQUESTS = int(os.environ.get("PORTER_BLK_REQUESTS", "10000"))
MAX_SECTORS = 256                        # per random request
WINDOW = MAX_SECTORS * SECTOR


def device_config(rig) -> tuple:
    """virtio_blk_config as the device shows it in BAR0 (capacity, size_max, seg_max, geometry, blk_size)."""
    base = rig.slot.io_base + VIRTIO_PCI_CONFIG
    raw = bytes(rig.device.io_read(base + i, 1) for i in range(VIRTIO_BLK_CONFIG.size))
    return VIRTIO_BLK_CONFIG.unpack(raw)


def device_counts(rig) -> dict:
    """Requests the device itself has carried out: QEMU's block statistics, the sim's counters."""
    if rig.backend == "qemu":
        [entry] = rig.qemu.qmp("query-blockstats")
        stats = entry["stats"]
        return {"reads": stats["rd_operations"], "writes": stats["wr_operations"],
                "flushes": stats["flush_operations"]}
    return {"reads": rig.device.requests["read"], "writes": rig.device.requests["write"],
            "flushes": rig.device.flushes}


# QEMU's -device properties or the sim's options for the same disk
def options(backend: str, *, block_size: int = SECTOR, queue_size: int | None = None) -> dict:
    if backend == "qemu":
        opts = {} if block_size == SECTOR else {"logical_block_size": block_size, "physical_block_size": block_size}
        return opts | ({"queue-size": queue_size} if queue_size else {})
    # the sim's seg_max follows the queue size as QEMU's does: the ring less header and status
    opts = {} if block_size == SECTOR else {"block_size": block_size}
    return opts | ({"queue_size": queue_size, "seg_max": queue_size - 2} if queue_size else {})


@pytest.fixture(scope="session")
def driver_flushes(blk_driver_features) -> bool:
    return "VIRTIO_BLK_F_FLUSH" in blk_driver_features


def flush(rig, disk, driver_flushes: bool) -> int:
    """Flush through the driver; the flushes that reach the device. A driver without
    VIRTIO_BLK_F_FLUSH (before 2.6.32, and QEMU offers no barriers) has no ordered queue:
    the block layer refuses the flush, EOPNOTSUPP, and nothing reaches the device."""
    if driver_flushes:
        rig.host.blk_flush(disk)
        return 1
    assert rig.host.blk_io(disk, "flush") == -errno.EOPNOTSUPP
    return 0


def clean(rig) -> None:
    assert rig.dma.violations == [], "\n".join(map(str, rig.dma.violations))
    assert rig.machine.errors == []
    if rig.backend == "sim":
        assert rig.device.errors == []


@pytest.fixture
def rig_on(backend_ready, virtio_blk_host):
    rigs = []

    def make(image, **options):
        r = BlkRig(virtio_blk_host, image, backend=backend_ready, **options)
        rigs.append(r)
        return r
    make.backend = backend_ready
    yield make
    for r in rigs:
        try:
            clean(r)
        finally:
            r.close()


# -- both backends ---------------------------------------------------------------------------

@pytest.mark.parametrize("block_size", [512, 4096])
def test_capacity_and_block_size_as_the_device_reports_them(rig_on, disk_image, block_size):
    path, _ = disk_image(6 << 20)
    rig = rig_on(path, device_options=options(rig_on.backend, block_size=block_size))
    assert rig.host.ready_ifnames == ["hd0"]
    capacity, _, _, _, _, _, blk_size = device_config(rig)
    disk = rig.host.blk_open("hd0")
    assert (disk.sectors, disk.block_size, disk.start) == (capacity, blk_size, 0)
    assert disk.sectors * SECTOR == path.stat().st_size and disk.block_size == block_size
    assert disk.disk == "vda" and not disk.read_only


def test_every_sector_read_equals_the_file(rig_on, disk_image):
    path, data = disk_image(8 << 20)
    rig = rig_on(path)
    disk = rig.host.blk_open("hd0", writable=False, window_bytes=WINDOW)
    for sector in range(0, disk.sectors, MAX_SECTORS):
        got = rig.host.blk_read(disk, sector, WINDOW)
        assert got == data[sector * SECTOR:sector * SECTOR + WINDOW], sector
    last = disk.sectors - 1
    assert rig.host.blk_read(disk, last, SECTOR) == data[last * SECTOR:]
    assert rig.dma.chains_checked >= disk.sectors // MAX_SECTORS


def test_writes_land_in_the_file(rig_on, disk_image, driver_flushes):
    path, data = disk_image(4 << 20)
    rig = rig_on(path)
    disk = rig.host.blk_open("hd0", window_bytes=WINDOW)
    # the first and last sectors, and runs that start and end inside a page
    for sector, count in ((0, 1), (disk.sectors - 1, 1), (7, 3), (1001, 256), (4096, 8)):
        pattern = bytes((sector + i) & 0xFF for i in range(count * SECTOR))
        rig.host.blk_write(disk, sector, pattern)
        data[sector * SECTOR:(sector + count) * SECTOR] = pattern
    flushed = flush(rig, disk, driver_flushes)
    assert path.read_bytes() == data
    counts = device_counts(rig)
    assert counts["writes"] >= 5 and counts["flushes"] == flushed


def test_ten_thousand_random_requests_against_a_model(rig_on, disk_image, driver_flushes):
    """Random reads and writes of 1..256 sectors anywhere on a 32 MiB disk; a bytearray is the model."""
    path, model = disk_image(32 << 20)
    rig = rig_on(path)
    host = rig.host
    disk = host.blk_open("hd0", window_bytes=WINDOW)
    # every request size once: each size class of the DDE's slabs has its slab from here on
    for count in range(1, MAX_SECTORS + 1):
        host.blk_write(disk, 0, model[:count * SECTOR])
        host.blk_read(disk, 0, count * SECTOR)
    flush(rig, disk, driver_flushes)
    arena_before = host.stats().arena_in_use
    rnd = random.Random(0xB10C)
    mismatches = []
    for i in range(REQUESTS):
        count = rnd.randint(1, MAX_SECTORS)
        sector = rnd.randrange(0, disk.sectors - count + 1)
        span = slice(sector * SECTOR, (sector + count) * SECTOR)
        if rnd.random() < 0.5:
            payload = rnd.randbytes(count * SECTOR)
            host.blk_write(disk, sector, payload)
            model[span] = payload
        elif host.blk_read(disk, sector, count * SECTOR) != model[span]:
            mismatches.append((i, sector, count))
    assert mismatches == []
    flush(rig, disk, driver_flushes)
    assert path.read_bytes() == model
    stats = host.blk_stats()
    refused_flushes = 0 if driver_flushes else 2
    assert (stats.reads + stats.writes, stats.errors, stats.in_flight) == (REQUESTS + 2 * MAX_SECTORS,
                                                                          refused_flushes, 0)
    assert rig.dma.chains_checked >= REQUESTS
    # every bounce page and bio went back: the arena holds what it held before the run
    assert host.stats().arena_in_use == arena_before


def test_requests_crossing_seg_max(rig_on, disk_image, driver_flushes):
    """QEMU's seg_max is its queue size less 2: 14 for a 16-entry queue (the sim is set up
    alike). A 256-sector request is 32 pages; the block layer must cut it into requests of
    at most 14."""
    path, data = disk_image(4 << 20)
    rig = rig_on(path, device_options=options(rig_on.backend, queue_size=16))
    seg_max = device_config(rig)[2]
    assert seg_max == 14
    disk = rig.host.blk_open("hd0", window_bytes=WINDOW)
    before = rig.dma.chains_checked             # the device sees only chains the guard copied
    assert rig.host.blk_read(disk, 100, WINDOW) == data[100 * SECTOR:100 * SECTOR + WINDOW]
    assert rig.dma.chains_checked - before >= -(-(WINDOW // 4096) // seg_max)     # 3 requests or more
    if rig.backend == "sim":
        assert 0 < rig.device.max_segments <= seg_max
    pattern = os.urandom(WINDOW)
    rig.host.blk_write(disk, 3000, pattern)
    flush(rig, disk, driver_flushes)
    assert path.read_bytes()[3000 * SECTOR:3000 * SECTOR + WINDOW] == pattern


def test_flush_reaches_the_device(rig_on, disk_image, driver_flushes):
    path, _ = disk_image(1 << 20)
    rig = rig_on(path)
    disk = rig.host.blk_open("hd0")
    before = device_counts(rig)["flushes"]
    rig.host.blk_write(disk, 10, b"\x11" * SECTOR)
    flushed = flush(rig, disk, driver_flushes) + flush(rig, disk, driver_flushes)
    assert device_counts(rig)["flushes"] == before + flushed == before + (2 if driver_flushes else 0)


def test_read_only_device_refuses_writes(rig_on, disk_image):
    path, data = disk_image(2 << 20)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    rig = rig_on(path, read_only=True)
    with pytest.raises(BlkError) as e:
        rig.host.blk_open("hd0", writable=True)          # what libstore tries first
    assert e.value.errno == errno.EROFS
    disk = rig.host.blk_open("hd0", writable=False)
    assert disk.read_only
    assert rig.host.blk_read(disk, 0, 4096) == data[:4096]
    rig.host.machine.memory.write(disk.window_phys, b"\xee" * SECTOR)
    assert rig.host.blk_io(disk, "write", 0, SECTOR) == -errno.EBADF
    assert device_counts(rig)["writes"] == 0
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_request_beyond_the_end_fails_cleanly(rig_on, disk_image):
    path, data = disk_image(1 << 20)
    rig = rig_on(path)
    disk = rig.host.blk_open("hd0")
    end = disk.sectors
    for sector, count in ((end, 1), (end - 1, 2), (end + 1000, 8), (2 ** 40, 1)):
        assert rig.host.blk_io(disk, "read", sector, count * SECTOR) == -errno.ENXIO, (sector, count)
        assert rig.host.blk_io(disk, "write", sector, count * SECTOR) == -errno.ENXIO, (sector, count)
    assert rig.host.blk_read(disk, end - 1, SECTOR) == data[-SECTOR:]        # the disk is fine
    assert path.read_bytes() == data
    assert rig.host.proc.poll() is None


def test_malformed_requests_are_refused(rig_on, disk_image):
    path, _ = disk_image(1 << 20)
    rig = rig_on(path)
    disk = rig.host.blk_open("hd0", window_bytes=8192)
    host = rig.host
    assert host.blk_io(disk, "read", 0, 100) == -errno.EINVAL              # not whole sectors
    assert host.blk_io(disk, "read", 0, 0) == -errno.EINVAL
    assert host.blk_io(disk, "read", 0, 4096, offset=8192 - 512) == -errno.EFAULT   # beyond the window
    big = host.blk_open("hd0", window_bytes=2 << 20)
    assert host.blk_io(big, "read", 0, (1 << 20) + 4096) == -errno.EINVAL  # more than one request moves
    with pytest.raises(BlkError) as e:
        host.blk_close(dataclasses.replace(disk, handle=63))
    assert e.value.errno == errno.EBADF
    for name in ("hd1", "hd0a", "sd0", "hd", "hd0s"):
        with pytest.raises(BlkError) as e:
            host.blk_open(name)
        assert e.value.errno == errno.ENXIO, name


# -- DOS partitions, as libmachdev names them (hd0s1 ...) ----------------------------------

def mbr_entry(kind: int, start: int, count: int) -> bytes:
    return struct.pack("<B3sB3sII", 0, b"\0" * 3, kind, b"\0" * 3, start, count)


def partition_table(entries: list[bytes]) -> bytes:
    return bytes(446) + b"".join(entries).ljust(64, b"\0") + b"\x55\xaa"


# (start, count) of each partition the image below carries, by its Linux number
PARTITIONS = {1: (2048, 4096), 2: (6144, 2048), 5: (8192 + 63, 1000), 6: (10240 + 63, 500)}


def partitioned_image(disk_image):
    path, data = disk_image(8 << 20)
    tables = {0: [mbr_entry(0x83, 2048, 4096), mbr_entry(0x83, 6144, 2048), mbr_entry(0x05, 8192, 8192)],
              8192: [mbr_entry(0x83, 63, 1000), mbr_entry(0x05, 2048, 600)],        # EBRs of the extended one
              10240: [mbr_entry(0x83, 63, 500)]}
    for sector, entries in tables.items():
        data[sector * SECTOR:(sector + 1) * SECTOR] = partition_table(entries)
    path.write_bytes(data)
    return path, data


def test_partitions_by_their_mach_names(rig_on, disk_image):
    path, data = partitioned_image(disk_image)
    rig = rig_on(path)
    host = rig.host
    for number, (start, count) in PARTITIONS.items():
        part = host.blk_open(f"hd0s{number}")
        assert (part.start, part.sectors) == (start, count), number
        assert host.blk_read(part, 0, 4096) == data[start * SECTOR:start * SECTOR + 4096]
        last = count - 1
        assert host.blk_read(part, last, SECTOR) == data[(start + last) * SECTOR:(start + count) * SECTOR]
        assert host.blk_io(part, "read", count, SECTOR) == -errno.ENXIO      # its end, not the disk's
        pattern = bytes([number]) * (2 * SECTOR)
        host.blk_write(part, 10, pattern)
        data[(start + 10) * SECTOR:(start + 12) * SECTOR] = pattern
        host.blk_close(part)
    assert path.read_bytes() == data
    for name in ("hd0s3", "hd0s4", "hd0s7", "hd0s0x"):     # the extended container, empty, absent, garbage
        with pytest.raises(BlkError) as e:
            host.blk_open(name)
        assert e.value.errno == errno.ENXIO, name
    whole = host.blk_open("hd0s0")                         # slice 0: the whole disk, as libmachdev has it
    assert (whole.start, whole.sectors) == (0, len(data) // SECTOR)


# -- the sim's: limits QEMU cannot be told to set, hostile devices -------------------------

@pytest.fixture
def sim(backend, virtio_blk_host, disk_image):
    """make(size, **SimBlkDevice options) -> (rig, the disk opened hd0, the image's bytes);
    a hostile device's errors are what its test looks at, so nothing is asserted at the end."""
    assert backend == "sim", "mark the test @pytest.mark.backends('sim')"
    rigs = []

    def make(size=4 << 20, **device_options):
        path, data = disk_image(size)
        r = BlkRig(virtio_blk_host, path, backend=backend, device_options=device_options)
        rigs.append(r)
        return r, r.host.blk_open("hd0", window_bytes=WINDOW), data
    yield make
    for r in rigs:
        r.close()


def healthy(rig) -> None:
    clean(rig)
    assert rig.dma.chains_checked > 0


@pytest.mark.backends("sim")
@pytest.mark.parametrize("seg_max, size_max", [(4, None), (1, 4096), (3, 8192)])
def test_requests_stay_inside_seg_max_and_size_max(sim, seg_max, size_max):
    """The block layer cuts a 32-page request into requests the device takes: at most
    seg_max data buffers, none larger than size_max (the sim refuses any other)."""
    rig, disk, data = sim(seg_max=seg_max, size_max=size_max)
    assert rig.host.blk_read(disk, 64, WINDOW) == data[64 * SECTOR:64 * SECTOR + WINDOW]
    payload = bytes(range(256)) * (WINDOW // 256)
    rig.host.blk_write(disk, 1000, payload)
    assert rig.image.read_bytes()[1000 * SECTOR:1000 * SECTOR + WINDOW] == payload
    assert 0 < rig.device.max_segments <= seg_max
    assert rig.device.max_segment <= (size_max or 4096)
    pages = WINDOW // 4096
    assert rig.device.requests["read"] >= -(-pages // seg_max)
    healthy(rig)


@pytest.mark.backends("sim")
def test_size_max_below_a_page_is_beyond_the_ddes_block_layer(sim):
    """2.6.29's blk_queue_max_segment_size() raises anything below a page to a page, so a
    device asking for smaller buffers gets page-sized ones: it refuses them, the read
    fails with EIO (the device's IOERR), nothing is returned as data."""
    rig, disk, _ = sim(size_max=2048)
    assert rig.host.blk_io(disk, "read", 0, 4096) == -errno.EIO
    assert any("size_max is 2048" in e for e in rig.device.errors)
    assert "set to minimum 4096" in rig.host.output()


@pytest.mark.backends("sim")
def test_flush_with_and_without_the_feature(sim, driver_flushes):
    rig, disk, _ = sim()
    flushed = flush(rig, disk, driver_flushes)
    assert rig.device.flushes == flushed and rig.device.requests["flush"] == flushed
    bare, disk2, _ = sim(features=DEFAULT_FEATURES & ~bit(VIRTIO_BLK_F_FLUSH))
    # no flush, no barriers: the queue is not ordered, and the block layer refuses an empty barrier
    assert bare.host.blk_io(disk2, "flush") == -errno.EOPNOTSUPP
    assert bare.device.requests["flush"] == 0
    clean(rig)
    assert bare.dma.violations == [] and bare.device.errors == []     # nothing reached the device


# -- hostile devices: what the driver does ------------------------------------------------

@pytest.mark.backends("sim")
def test_bad_status_byte_fails_the_request(sim):
    """2.6.32's blk_done maps any status but OK and UNSUPP to -EIO: the read fails with
    EIO (its bytes are not handed over), and the next honest request works."""
    rig, disk, data = sim()
    rig.device.faults.bad_status = True
    rig.host.machine.memory.write(disk.window_phys, b"\x00" * 4096)
    assert rig.host.blk_io(disk, "read", 0, 4096) == -errno.EIO
    assert rig.host.machine.memory.read(disk.window_phys, 4096) == b"\x00" * 4096
    assert rig.host.blk_io(disk, "write", 8, 4096) == -errno.EIO
    rig.device.faults.bad_status = False
    assert rig.host.blk_read(disk, 0, 4096) == data[:4096]
    assert rig.host.blk_stats().errors == 2


@pytest.mark.backends("sim")
def test_short_used_length_is_ignored(sim):
    """The driver never reads the used length (blk_done takes the status byte only):
    a device that reports half the bytes still delivers whole, correct reads."""
    rig, disk, data = sim()
    rig.device.faults.short_len = True
    assert rig.host.blk_read(disk, 16, 8192) == data[16 * SECTOR:16 * SECTOR + 8192]
    rig.host.blk_write(disk, 32, b"\x42" * 4096)
    assert rig.image.read_bytes()[32 * SECTOR:32 * SECTOR + 4096] == b"\x42" * 4096
    healthy(rig)


@pytest.mark.parametrize("fault, value, driver_says, first_completes", [
    ("bad_used_id", True, "out of range", False),
    ("unavailable_used_id", True, "is not a head!", False),
    # the real entry comes first and completes its request; the phantom one after it breaks the ring
    ("used_idx_jump", 1, "is not a head!", True),
])
@pytest.mark.backends("sim")
def test_hostile_used_ring_stops_the_queue(sim, fault, value, driver_says, first_completes):
    """virtio_ring checks every used id: it reports the bad ring and stops the queue.
    A request whose completion the device garbled never completes (no error is invented
    for it), nor does any after it; the host stays up and answers."""
    rig, disk, data = sim()
    assert rig.host.blk_read(disk, 0, 4096) == data[:4096]          # healthy first
    setattr(rig.device.faults, fault, value)
    first, status = rig.host.blk_submit(disk, "read", 8, 4096)
    assert status == 0
    if first_completes:
        assert rig.host.blk_wait(first) == 0
    else:
        with pytest.raises(TimeoutError):
            rig.host.blk_wait(first, timeout=2)
    setattr(rig.device.faults, fault, type(value)())                # honest again: too late
    later, status = rig.host.blk_submit(disk, "read", 16, 4096, offset=4096)
    assert status == 0
    with pytest.raises(TimeoutError):
        rig.host.blk_wait(later, timeout=2)
    assert driver_says in rig.host.output()
    assert rig.host.proc.poll() is None
    assert rig.host.blk_stats().in_flight == (1 if first_completes else 2)


@pytest.mark.backends("sim")
def test_missing_interrupt_leaves_the_request_pending(sim):
    """Without an interrupt the driver never looks at the used ring (it does not poll):
    the read waits, done by the device. When the line is sampled again (an EOI, the
    device's ISR still set) the interrupt arrives and blk_done reaps everything."""
    rig, disk, data = sim()
    rig.device.faults.no_interrupts = True
    first, status = rig.host.blk_submit(disk, "read", 0, 4096)
    assert status == 0
    with pytest.raises(TimeoutError):
        rig.host.blk_wait(first, timeout=2)
    assert rig.device.requests["read"] == 1                          # the device did it
    second, status = rig.host.blk_submit(disk, "read", 8, 4096, offset=4096)
    with pytest.raises(TimeoutError):
        rig.host.blk_wait(second, timeout=1)
    assert rig.host.blk_stats().in_flight == 2
    rig.device.faults.no_interrupts = False
    os.eventfd_write(rig.slot.resample_fd, 1)
    assert rig.host.blk_wait(first) == 0 and rig.host.blk_wait(second) == 0
    window = rig.host.machine.memory.read(disk.window_phys, 8192)
    assert window == data[:4096] + data[8 * SECTOR:8 * SECTOR + 4096]
    healthy(rig)


# -- negative control -----------------------------------------------------------------------

RUNTIME_RULES = {"sg-set-buf-phys", "sg-init-one-phys", "sg-phys", "sg-virt"}


@pytest.fixture(scope="module")
def host_without_runtime_rules(linux_2_6_32, dde_tree, dde_build, tmp_path_factory):
    """The same files with every compile-time rule, without the scatterlist ones."""
    tmp = tmp_path_factory.mktemp("negative-blk")
    blocks = re.split(r"(?m)^(?=\[\[rule\]\])", (RULES_DIR / "hurd-dde.toml").read_text())
    rules = tmp / "compile-time-only.toml"
    rules.write_text("".join(b for b in blocks if not any(f'id = "{r}"' in b for r in RUNTIME_RULES)))
    inputs = load_inputs("virtio-blk", "2.6.32", rule_paths=[rules])
    plan = plan_port(inputs, scan_inputs(inputs))
    fired = {e.rule for edits in plan.edits.values() for e in edits}
    assert not fired & RUNTIME_RULES
    emit_tree(plan, tmp / "tree")
    return build_host(tmp / "tree", dde_tree, dde_build, log=lambda m: None).executable


def test_negative_control_fails_the_dma_check(backend_ready, disk_image, host_without_runtime_rules):
    path, data = disk_image(1 << 20)
    with BlkRig(host_without_runtime_rules, path, backend=backend_ready) as rig:
        disk = rig.host.blk_open("hd0")
        tag, status = rig.host.blk_submit(disk, "read", 0, 4096)
        assert status == 0
        # the DDE's sg_set_buf()/sg_phys() put garbage addresses into the request's
        # descriptors: the guard keeps the kick from the device, so the read never finishes
        with pytest.raises(TimeoutError):
            rig.host.blk_wait(tag, timeout=3)
        assert rig.dma.violations, "the pristine scatterlist code passed the DMA check"
        first = str(rig.dma.violations[0])
        assert re.match(r"queue 0 descriptor [\d >indirect-]+: \[0x[0-9a-f]+, \+\d+\) (lies outside the arena"
                        r"|lies in physical page 0|touches page)", first), first
        assert path.read_bytes() == data


# -- porter demo --bundle virtio-blk ------------------------------------------------------------

def test_the_demo_writes_a_pattern_and_reads_it_back(qemu_available, linux_2_6_32, dde_tree, dde_build, tmp_path):
    from porter.demo import run_demo
    said = []
    assert run_demo("virtio-blk", "2.6.32", tmp_path / "dde_virtio_blk", count=3, log=said.append) == 0
    text = "\n".join(said)
    assert "libdde_linux26_block, 0 unexplained" in text
    assert text.count("write: hd0 sector") == 3
    assert "back through the driver: equal" in text and "original bytes: yes" in text
    assert "0 errors" in said[-1]
