"""MB/s and IOPS through the ported virtio-blk (driver host on the real DDE's block
layer), on QEMU's virtio-blk-pci and on the sim over a raw image file, next to the
harness's own minimal ring loop (BlkRingDriver) on the same device: the ceiling.
Sequential reads and writes in 128 KiB requests, one at a time; 4 KiB random reads
one at a time and DEPTH in flight. A benchmark: it prints figures, asserts nothing
about speed (it does check that what it read is the file).
Run: make bench (or python benchmarks/blk_throughput.py [--mib N] [--ios N])."""

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from porter.build import build_host
from porter.dde import require_dde
from porter.dde_build import ensure_build
from porter.emit import emit_tree
from porter.harness.machine import Machine
from porter.harness.memory import GuestMemory
from porter.harness.rig import BlkRig, blk_device
from porter.harness.ring_driver import BlkRingDriver
from porter.harness.virtio_blk import SECTOR, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN
from porter.pipeline import load_inputs, scan_inputs
from porter.plan import plan_port

CHUNK = 128 << 10          # a sequential request
IO = 4096                  # a random read
DEPTH = 8                  # random reads in flight in the queued runs
IMAGE_BYTES = 64 << 20


def figures(seq_read: float, seq_write: float, mib: int, qd1: float, qdn: float, ios: int) -> str:
    return (f"read {mib / seq_read:7.1f} MiB/s  write {mib / seq_write:7.1f} MiB/s   "
            f"4K random read {ios / qd1:7.0f} IOPS (QD1) {ios / qdn:7.0f} IOPS (QD{DEPTH})")


def random_sectors(sectors: int, ios: int) -> list[int]:
    rnd = random.Random(4096)
    return [rnd.randrange(0, sectors - IO // SECTOR + 1) & ~7 for _ in range(ios)]


def through_driver(host_exe: Path, backend: str, image: Path, mib: int, ios: int) -> str:
    with BlkRig(host_exe, image, backend=backend) as rig:
        host = rig.host
        disk = host.blk_open("hd0", window_bytes=max(CHUNK, DEPTH * IO))
        total = mib << 20
        t0 = time.perf_counter()
        got = [host.blk_read(disk, off // SECTOR, CHUNK) for off in range(0, total, CHUNK)]
        seq_read = time.perf_counter() - t0
        if b"".join(got) != image.read_bytes()[:total]:
            raise SystemExit(f"{backend}: the driver read something other than the file")
        payload = os.urandom(CHUNK)
        host.machine.memory.write(disk.window_phys, payload)
        t0 = time.perf_counter()
        for off in range(0, total, CHUNK):
            if host.blk_io(disk, "write", off // SECTOR, CHUNK):
                raise SystemExit(f"{backend}: a write failed")
        host.blk_flush(disk)
        seq_write = time.perf_counter() - t0
        sectors = random_sectors(disk.sectors, ios)
        t0 = time.perf_counter()
        for s in sectors:
            host.blk_io(disk, "read", s, IO)
        qd1 = time.perf_counter() - t0
        t0 = time.perf_counter()
        pending: deque = deque()
        for i, s in enumerate(sectors):
            if len(pending) == DEPTH:
                tag, slot = pending.popleft()
                host.blk_wait(tag)
            else:
                slot = len(pending)
            tag, status = host.blk_submit(disk, "read", s, IO, offset=slot * IO)
            if status:
                raise SystemExit(f"{backend}: a queued read was refused ({status})")
            pending.append((tag, slot))
        for tag, _ in pending:
            host.blk_wait(tag)
        qdn = time.perf_counter() - t0
        if host.blk_stats().errors:
            raise SystemExit(f"{backend}: the driver reported errors")
        return figures(seq_read, seq_write, mib, qd1, qdn, ios)


def ring_loop(backend: str, image: Path, mib: int, ios: int) -> str:
    with GuestMemory(32 << 20) as mem, blk_device(backend, image) as dev:
        dev.sync_memory(mem)
        machine = Machine(mem)
        try:
            slot = machine.attach(dev)
            drv = BlkRingDriver(dev, mem, io_base=slot.io_base, irq_fd=slot.irq_fd,
                                resample_fd=slot.resample_fd, max_bytes=CHUNK).start()
            total = mib << 20
            t0 = time.perf_counter()
            got = [drv.read(off // SECTOR, CHUNK) for off in range(0, total, CHUNK)]
            seq_read = time.perf_counter() - t0
            if b"".join(got) != image.read_bytes()[:total]:
                raise SystemExit(f"{backend}: the ring loop read something other than the file")
            payload = os.urandom(CHUNK)
            t0 = time.perf_counter()
            for off in range(0, total, CHUNK):
                if drv.write(off // SECTOR, payload) != VIRTIO_BLK_S_OK:
                    raise SystemExit(f"{backend}: a ring-loop write failed")
            drv.flush()
            seq_write = time.perf_counter() - t0
            sectors = random_sectors(drv.capacity, ios)
            t0 = time.perf_counter()
            for s in sectors:
                drv.read(s, IO)
            qd1 = time.perf_counter() - t0
            t0 = time.perf_counter()
            queued = iter(sectors)
            left = len(sectors)
            in_flight = 0
            while left:
                while in_flight < DEPTH and drv.free_slots and (s := next(queued, None)) is not None:
                    drv.submit(VIRTIO_BLK_T_IN, s, IO)
                    in_flight += 1
                drv.kick_requests()
                done: list = []
                drv.wait_for(lambda: bool(done.extend(drv.reap()) or done), 5.0, "queued ring-loop reads")
                if any(d.status != VIRTIO_BLK_S_OK for d in done):
                    raise SystemExit(f"{backend}: a queued ring-loop read failed")
                in_flight -= len(done)
                left -= len(done)
            qdn = time.perf_counter() - t0
            drv.stop()
            return figures(seq_read, seq_write, mib, qd1, qdn, ios)
        finally:
            machine.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mib", type=int, default=32, help="MiB read and written sequentially (default 32)")
    ap.add_argument("--ios", type=int, default=2000, help="4 KiB random reads per run (default 2000)")
    ap.add_argument("--version", default="2.6.32")
    args = ap.parse_args(argv)
    if not 0 < args.mib <= IMAGE_BYTES >> 20:
        ap.error(f"--mib must be 1..{IMAGE_BYTES >> 20}")
    inputs = load_inputs("virtio-blk", args.version)
    tmp = Path(tempfile.mkdtemp(prefix="porter-bench-blk-"))
    try:
        emit_tree(plan_port(inputs, scan_inputs(inputs)), tmp / "tree")
        dde = require_dde()
        host = build_host(tmp / "tree", dde, ensure_build(dde, log=lambda m: None), log=lambda m: None)
        image = tmp / "disk.img"
        print(f"virtio-blk {args.version}, a {IMAGE_BYTES >> 20} MiB raw image; {args.mib} MiB each way in "
              f"{CHUNK >> 10} KiB requests, {args.ios} random {IO // 1024} KiB reads")
        for backend in ("qemu", "sim"):
            image.write_bytes(os.urandom(IMAGE_BYTES))
            print(f"{backend:4} ported driver  {through_driver(host.executable, backend, image, args.mib, args.ios)}")
            image.write_bytes(os.urandom(IMAGE_BYTES))
            print(f"{backend:4} ring loop      {ring_loop(backend, image, args.mib, args.ios)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
