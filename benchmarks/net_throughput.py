"""Frames per second through the ported virtio-net (driver host on the real DDE,
DMA guard on), on QEMU's device and on the sim, next to the harness's own
minimal ring loop on the same device (the ceiling), and their ratio: the
median of several runs. A benchmark: it prints figures, asserts nothing about
speed. Run: make bench (or python benchmarks/net_throughput.py [--frames N] [--runs N])."""

import argparse
import shutil
import statistics
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from porter.build import build_host
from porter.dde import require_dde
from porter.dde_build import ensure_build
from porter.emit import emit_tree
from porter.harness.machine import Machine
from porter.harness.memory import GuestMemory
from porter.harness.qemu import DgramNetdev, QemuDevice
from porter.harness.rig import NetRig
from porter.harness.ring_driver import NetRingDriver
from porter.harness.sim_net import SimNetDevice
from porter.pipeline import load_inputs, scan_inputs
from porter.plan import plan_port

PEER = b"\x02\x00\x00\x00\x00\x09"
SIZE = 1514


def frames(dst, src, n):
    body = bytes(i & 0xFF for i in range(SIZE - 14))
    return [dst + src + b"\x88\xb5" + body for _ in range(n)]


def rate(n, seconds):
    return f"{n / seconds:9.0f} frames/s ({n} x {SIZE} B in {seconds:.2f}s)"


def through_driver(host_exe, backend, n):
    with NetRig(host_exe, backend=backend) as rig:
        rig.host.open("eth0")
        tx = frames(PEER, rig.mac_bytes, n)
        got = []
        reader = threading.Thread(target=lambda: got.extend(rig.peer_recv(10) for _ in range(n)))
        reader.start()
        t0 = time.perf_counter()
        rig.host.send_many(tx, timeout=30)
        reader.join()
        t_tx = time.perf_counter() - t0
        assert len(got) == n
        rx = frames(rig.mac_bytes, PEER, n)
        sender = threading.Thread(target=lambda: [rig.peer_send(f) for f in rx])
        t0 = time.perf_counter()
        sender.start()
        for _ in range(n):
            rig.host.receive(timeout=10)
        t_rx = time.perf_counter() - t0
        sender.join()
        stats = rig.host.stats()
        assert rig.dma.violations == [] and rig.dma.chains_checked > 0
        return t_tx, t_rx, stats


def ring_ceiling(backend, n):
    workdir = Path(tempfile.mkdtemp(prefix="porter-bench-"))
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    peer.bind(str(workdir / "peer.sock"))
    peer.settimeout(10)
    try:
        with GuestMemory(32 << 20) as mem:
            dev = (QemuDevice(netdev=DgramNetdev(str(workdir / "peer.sock"))) if backend == "qemu"
                   else SimNetDevice(str(workdir / "peer.sock")))
            with dev:
                dev.sync_memory(mem)
                machine = Machine(mem)
                slot = machine.attach(dev)
                drv = NetRingDriver(dev, mem, io_base=slot.io_base, irq_fd=slot.irq_fd,
                                 resample_fd=slot.resample_fd).start()
                mac = drv.mac
                tx = frames(PEER, mac, n)
                got = []
                reader = threading.Thread(target=lambda: got.extend(peer.recv(65536) for _ in range(n)))
                reader.start()
                t0 = time.perf_counter()
                for i in range(0, n, 64):
                    drv.transmit(tx[i:i + 64])
                reader.join()
                t_tx = time.perf_counter() - t0
                rx = frames(mac, PEER, n)
                sender = threading.Thread(target=lambda: [peer.sendto(f, dev.netdev_path) for f in rx])
                t0 = time.perf_counter()
                sender.start()
                count = 0
                while count < n:
                    count += len(drv.receive(1, timeout=10))
                t_rx = time.perf_counter() - t0
                sender.join()
                drv.stop()
                machine.close()
                return t_tx, t_rx
    finally:
        peer.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=3, help="runs per figure; the median is printed")
    ap.add_argument("--version", default="2.6.32")
    args = ap.parse_args(argv)
    n = args.frames
    inputs = load_inputs("virtio-net", args.version)
    tmp = Path(tempfile.mkdtemp(prefix="porter-bench-tree-"))
    try:
        emit_tree(plan_port(inputs, scan_inputs(inputs)), tmp / "tree")
        dde = require_dde()
        host = build_host(tmp / "tree", dde, ensure_build(dde, log=lambda m: None), log=lambda m: None)
        print(f"virtio-net {args.version}, frames of {SIZE} bytes, {n} each way, median of {args.runs} runs")
        for backend in ("qemu", "sim"):
            driver = [through_driver(host.executable, backend, n) for _ in range(args.runs)]
            ring = [ring_ceiling(backend, n) for _ in range(args.runs)]
            d_tx, d_rx = (statistics.median(r[i] for r in driver) for i in (0, 1))
            c_tx, c_rx = (statistics.median(r[i] for r in ring) for i in (0, 1))
            traps = statistics.median(r[2].portio_traps for r in driver)
            print(f"{backend:4} ported driver  TX {rate(n, d_tx)}   RX {rate(n, d_rx)}   "
                  f"({traps:.0f} trapped port accesses)")
            print(f"{backend:4} ring loop      TX {rate(n, c_tx)}   RX {rate(n, c_rx)}")
            print(f"{backend} TX ratio {c_tx / d_tx:.2f}")
            print(f"{backend} RX ratio {c_rx / d_rx:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
