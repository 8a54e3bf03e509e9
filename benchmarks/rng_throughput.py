"""Bytes per second through the ported virtio-rng (driver host on the real DDE), on QEMU's
virtio-rng-pci (fed from a FIFO) and on the sim, next to the harness's own minimal ring loop
(RngRingDriver) on the same device (the ceiling). A benchmark: it prints figures, asserts
nothing about speed; it does check that every byte came through, since a figure for a stream
that lost bytes would be no figure. Run: make bench (or python benchmarks/rng_throughput.py
[--mib N] [--mib-pages N] [--version RELEASE]).

Sizes differ by driver: the 2.6.28-2.6.32 drivers move 64 bytes per device round trip, the
2.6.33 on drivers and the ring loop 4096 or more, so they stream more for a figure of the same
standing."""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from porter.build import build_host
from porter.dde import require_dde
from porter.dde_build import ensure_build
from porter.emit import emit_tree
from porter.harness.rig import RngRig
from porter.harness.ring_driver import RngRingDriver
from porter.harness.virtio_rng import check_stream, fill_words_of
from porter.pipeline import load_inputs, scan_inputs
from porter.plan import plan_port


def rate(n, seconds):
    return f"{n / seconds / 1e6:7.2f} MB/s ({n} B in {seconds:.2f}s)"


def through_driver(host_exe, backend, data, fill_words):
    with RngRig(host_exe, backend=backend) as rig:
        writer = rig.feed_in_background(data)
        got = bytearray()
        t0 = time.perf_counter()
        while len(got) < len(data):
            part = rig.host.rng_read(min(1 << 20, len(data) - len(got)), timeout=10)
            if not part:
                raise SystemExit(f"{backend}: the driver handed out nothing for 10 s after {len(got)} bytes")
            got += part
        seconds = time.perf_counter() - t0
        writer.join()
        check_stream(data, bytes(got), fill_words)
        return seconds, rig.host.rng_info().pulls


def ring_ceiling(host_exe, backend, data):
    """The same device (and FIFO) without the driver host: the harness's ring loop, no DMA guard."""
    with RngRig(host_exe, backend=backend, start_host=False) as rig:
        slot = rig.slot
        drv = RngRingDriver(rig.device, rig.memory, io_base=slot.io_base, irq_fd=slot.irq_fd,
                            resample_fd=slot.resample_fd).start()
        writer = rig.feed_in_background(data)
        t0 = time.perf_counter()
        got = drv.read(len(data), timeout=30)
        seconds = time.perf_counter() - t0
        writer.join()
        drv.stop()
        check_stream(data, got)
        return seconds, drv.buffer_size, drv.input.slots


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mib", type=float, default=4, help="MiB per run through a data_read() driver (default 4)")
    ap.add_argument("--mib-pages", type=float, default=64,
                    help="MiB per run through a read() driver and the ring loop (default 64)")
    ap.add_argument("--version", action="append", help="Linux release (repeatable; default 2.6.32 and 2.6.39)")
    args = ap.parse_args(argv)
    dde = require_dde()
    dde_build = ensure_build(dde, log=lambda m: None)
    with tempfile.TemporaryDirectory(prefix="porter-bench-tree-") as tmp:
        for i, version in enumerate(args.version or ["2.6.32", "2.6.39"]):
            inputs = load_inputs("virtio-rng", version)
            tree = Path(tmp) / f"tree-{version}"
            emit_tree(plan_port(inputs, scan_inputs(inputs)), tree)
            host = build_host(tree, dde, dde_build, log=lambda m: None).executable
            fill_words = fill_words_of(tree)
            how = f"data_read() words, {4 * fill_words}-byte device buffers" if fill_words else "read() into a 4096-byte buffer"
            n = int((args.mib if fill_words else args.mib_pages) * (1 << 20)) & ~3
            print(f"virtio-rng {version} ({how})")
            for backend in ("qemu", "sim"):
                seconds, pulls = through_driver(host, backend, os.urandom(n), fill_words)
                print(f"  {backend:4} ported driver  {rate(n, seconds)}   {n / pulls:6.0f} B per pull, {pulls} pulls")
                if i == 0:       # the ring loop does not depend on the release
                    ring_n = int(args.mib_pages * (1 << 20))
                    seconds, size, slots = ring_ceiling(host, backend, os.urandom(ring_n))
                    print(f"  {backend:4} ring loop      {rate(ring_n, seconds)}   {slots} buffers of {size} B per round")
    return 0


if __name__ == "__main__":
    sys.exit(main())
