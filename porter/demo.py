"""The main job end to end, per bundle: port the driver, compile and link-check it
against the DDE, build the driver host, then run it on QEMU's device. For
virtio-net: ping the Linux kernel in a network namespace through the ported driver;
for virtio-blk: write a pattern onto a raw image file through the ported driver,
read it back, and compare both with the file; for virtio-rng: read 1 MiB from QEMU's
virtio-rng-pci (fed from a FIFO) through the ported driver and compare it with what went in."""

import os
import tempfile
import time
from pathlib import Path

from . import PorterError


def port_check_build(bundle: str, version: str, out: Path, log=print):
    """The stages every demo shares; the driver host built from ``out``."""
    from .build import build_host
    from .check import format_table, run_check
    from .dde import require_dde
    from .dde_build import DdeBuildError, ensure_build
    from .emit import emit_tree
    from .pipeline import load_inputs, scan_inputs
    from .plan import plan_port
    from .tree import tree_dde_libraries

    inputs = load_inputs(bundle, version)
    plan = plan_port(inputs, scan_inputs(inputs))
    plan.raise_if_unmapped()
    result = emit_tree(plan, out, force=False)
    log(f"port:  {result.summary()}")
    dde = require_dde()
    try:
        dde_build = ensure_build(dde, log=lambda m: log(f"dde:   {m}"))
        # libdde_linux26 and the bundle's own DDE libraries (virtio-blk: the block layer)
        libraries = tree_dde_libraries(out)
        symbols = dde_build.symbols_for(libraries)
    except DdeBuildError as e:
        raise PorterError(str(e)) from None
    check = run_check(out, dde, symbols)
    if not check.ok:
        log(format_table(check))
        raise PorterError("the emitted tree does not pass `porter check`")
    names = ["libdde_linux26"] + [f"libdde_linux26_{name}" for name in libraries]
    log(f"check: {len(check.compiles)} sources compile against the DDE; {len(check.from_library('libdde_linux26'))} symbols "
        f"from {', '.join(names)}, 0 unexplained")
    return build_host(out, dde, dde_build, log=lambda m: log(f"build: {m}"))


def net_demo(version: str, out: Path, count: int = 5, log=print) -> int:
    from .harness.netns import netns_usable
    from .harness.ping import Pinger
    from .harness.rig import NetRig

    host = port_check_build("virtio-net", version, out, log)
    why = netns_usable()
    if why:
        raise PorterError(f"the demo pings a kernel in a network namespace, which {why}")

    with NetRig(host.executable, wire="tap") as rig:
        info = rig.host.info("eth0")
        log(f"run:   driver host up: {', '.join(rig.host.ready_ifnames)} mac {info.mac.hex(':')} "
            f"mtu {info.mtu}")
        rig.host.open("eth0")
        info = rig.host.info("eth0")
        log(f"run:   eth0 open, link {'up' if info.link_up else 'down'}")
        pinger = Pinger(lambda f: rig.host.xmit(f), lambda t: rig.host.receive(t)[1],
                        info.mac, "192.0.2.2")
        kernel_mac = pinger.resolve(rig.netns.kernel_ip)
        if kernel_mac is None:
            raise PorterError("no ARP reply from the kernel in the namespace")
        log(f"arp:   {rig.netns.kernel_ip} is at {kernel_mac.hex(':')}")
        log(f"PING {rig.netns.kernel_ip} 56(84) bytes of data, through the ported virtio-net")
        got, rtts = 0, []
        for seq in range(1, count + 1):
            r = pinger.echo(kernel_mac, rig.netns.kernel_ip, seq)
            if r:
                got += 1
                rtts.append(r.rtt_ms)
                log(f"{r.bytes} bytes from {rig.netns.kernel_ip}: icmp_seq={seq} ttl={r.ttl} time={r.rtt_ms:.2f} ms")
            else:
                log(f"no answer to icmp_seq={seq}")
            time.sleep(0.2)
        log(f"--- {rig.netns.kernel_ip} ping statistics ---")
        loss = 100 * (count - got) // count
        summary = f"{count} packets transmitted, {got} received, {loss}% packet loss"
        if rtts:
            summary += f"; rtt min/avg/max = {min(rtts):.2f}/{sum(rtts) / len(rtts):.2f}/{max(rtts):.2f} ms"
        log(summary)
        return 0 if got == count else 1


DEMO_DISK_BYTES = 16 << 20
DEMO_BLOCK = 64 << 10            # bytes per request of the pattern


def blk_demo(version: str, out: Path, count: int = 5, log=print) -> int:
    """``count`` 64 KiB blocks of a pattern, spread over a 16 MiB image of random bytes."""
    from .harness.rig import BlkRig
    from .harness.virtio_blk import SECTOR

    host = port_check_build("virtio-blk", version, out, log)
    with tempfile.TemporaryDirectory(prefix="porter-demo-") as tmp:
        image = Path(tmp) / "disk.img"
        original = os.urandom(DEMO_DISK_BYTES)
        image.write_bytes(original)
        with BlkRig(host.executable, image) as rig:
            disk = rig.host.blk_open("hd0", window_bytes=DEMO_BLOCK)
            log(f"run:   driver host up: {', '.join(rig.host.ready_ifnames)} is {disk.disk} on QEMU's "
                f"virtio-blk-pci, {disk.sectors} sectors ({disk.sectors * SECTOR >> 20} MiB), "
                f"block size {disk.block_size}, image {image.stat().st_size >> 20} MiB of random bytes")
            stride = (disk.sectors - DEMO_BLOCK // SECTOR) // max(count - 1, 1)
            expect = bytearray(original)
            t0 = time.monotonic()
            for i in range(count):
                sector = i * stride
                pattern = (f"porter virtio-blk block {i} at sector {sector}\n".encode() * DEMO_BLOCK)[:DEMO_BLOCK]
                rig.host.blk_write(disk, sector, pattern)
                expect[sector * SECTOR:sector * SECTOR + DEMO_BLOCK] = pattern
                log(f"write: hd0 sector {sector:>6} +{DEMO_BLOCK >> 10} KiB")
            rig.host.blk_flush(disk)
            back = [rig.host.blk_read(disk, i * stride, DEMO_BLOCK) for i in range(count)]
            seconds = time.monotonic() - t0
            through_driver = all(back[i] == expect[i * stride * SECTOR:i * stride * SECTOR + DEMO_BLOCK]
                                 for i in range(count))
            log(f"read:  {count} blocks back through the driver: {'equal' if through_driver else 'DIFFERENT'}")
            in_file = image.read_bytes() == expect
            log(f"file:  {image.name} read by Python equals the pattern over the original bytes: "
                f"{'yes' if in_file else 'NO'}")
            stats = rig.host.blk_stats()
            log(f"--- hd0: {stats.writes} writes, {stats.reads} reads, {stats.flushes} flush, {stats.errors} errors, "
                f"{2 * count * DEMO_BLOCK / seconds / 1e6:.1f} MB/s ---")
            return 0 if through_driver and in_file and stats.errors == 0 else 1


RNG_DEMO_BYTES = 1 << 20


def rng_demo(version: str, out: Path, count: int = 5, log=print) -> int:
    """``count`` is the other demos'; this one always reads RNG_DEMO_BYTES."""
    from .harness.rig import RngRig
    from .harness.virtio_rng import StreamMismatch, check_stream, fill_words_of

    host = port_check_build("virtio-rng", version, out, log)
    fill_words = fill_words_of(out)
    sent = os.urandom(RNG_DEMO_BYTES)
    with RngRig(host.executable) as rig:
        log(f"run:   driver host up: hwrng {', '.join(rig.host.ready_ifnames)} on QEMU's virtio-rng-pci, "
            f"entropy from the FIFO {rig.fifo_path}")
        writer = rig.feed_in_background(sent)
        t0 = time.monotonic()
        got = bytearray()
        while len(got) < len(sent):
            part = rig.host.rng_read(min(65536, len(sent) - len(got)), timeout=10)
            if not part:
                raise PorterError(f"the driver handed out nothing for 10 s after {len(got)} of {len(sent)} bytes")
            got += part
        seconds = time.monotonic() - t0
        writer.join()
        info = rig.host.rng_info()
        log(f"read:  {len(got)} bytes in {seconds:.2f}s ({len(got) / seconds / 1e6:.2f} MB/s), "
            f"{info.pulls} pulls from the driver")
        order = "in order" if not fill_words else f"each device fill of up to {4 * fill_words} bytes last word first"
        try:
            check_stream(sent, bytes(got), fill_words)
        except StreamMismatch as e:
            log(f"compare: FAILED: {e}")
            return 1
        if rig.dma.violations:
            log(f"dma:   FAILED: {rig.dma.violations[0]}")
            return 1
        log(f"compare: every byte written to the FIFO came out of the ported driver ({order}); "
            f"none lost, repeated or invented; DMA guard: {rig.dma.chains_checked} buffers checked, 0 violations")
        return 0


# bundle -> its demo(version, out, count, log); the default --out is out/<tree name>
DEMOS = {"virtio-net": net_demo, "virtio-blk": blk_demo, "virtio-rng": rng_demo}


def run_demo(bundle: str, version: str, out: Path, count: int = 5, log=print) -> int:
    if bundle not in DEMOS:
        raise PorterError(f"--bundle {bundle}: porter has demos for {', '.join(sorted(DEMOS))}")
    return DEMOS[bundle](version, out, count, log)
