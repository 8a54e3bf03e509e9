"""The main job end to end, per bundle: port the driver, compile and link-check it
against the DDE, build the driver host, then run it on QEMU's device. For
virtio-net: ping the Linux kernel in a network namespace through the ported driver."""

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

    inputs = load_inputs(bundle, version)
    plan = plan_port(inputs, scan_inputs(inputs))
    plan.raise_if_unmapped()
    result = emit_tree(plan, out, force=False)
    log(f"port:  {result.summary()}")
    dde = require_dde()
    try:
        dde_build = ensure_build(dde, log=lambda m: log(f"dde:   {m}"))
    except DdeBuildError as e:
        raise PorterError(str(e)) from None
    check = run_check(out, dde, dde_build.defined_symbols)
    if not check.ok:
        log(format_table(check))
        raise PorterError("the emitted tree does not pass `porter check`")
    log(f"check: {len(check.compiles)} sources compile against the DDE; {len(check.from_library('libdde_linux26'))} symbols "
        f"from libdde_linux26, 0 unexplained")
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


# bundle -> its demo(version, out, count, log); the default --out is out/<tree name>
DEMOS = {"virtio-net": net_demo}


def run_demo(bundle: str, version: str, out: Path, count: int = 5, log=print) -> int:
    if bundle not in DEMOS:
        raise PorterError(f"--bundle {bundle}: porter has demos for {', '.join(sorted(DEMOS))}")
    return DEMOS[bundle](version, out, count, log)
